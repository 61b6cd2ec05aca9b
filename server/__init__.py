"""The adbreak server: MQTT ingest into SQLite, REST API and Socket.IO, the dashboard, and the auto-mute rule.

Entry points: :func:`server.app.create_app`, :func:`server.app.run_server`, and ``server.cli.add_parsers`` for the
``adbreak server`` / ``adbreak db upgrade`` commands. See ``docs/server.md``.
"""
