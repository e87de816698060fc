"""The labeling web application (`calkit serve`); needs the `serve` extra: pip install 'calkit[serve]'."""
