"""The adbreak edge: frame sources, the int8 backbone, the head, the temporal decision and the pipeline wiring them.

Nothing here imports training-only libraries (scikit-learn, matplotlib): this is what runs on the Raspberry Pi.
"""
