"""SinkVis backend: services behind one Api facade. Never imports pywebview."""

__version__ = "0.1.0"
