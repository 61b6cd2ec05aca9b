"""Transfer learning on the pretrained backbone: labelled frame folders -> a model bundle and a report."""
