"""SinkVis backend: services behind one Api facade. Never imports pywebview."""
