"""The web monitor, shared by a client's ``gridlib.httpd.HTTPServer`` and ``gridlib scheduler --httpd`` (docs/monitor.md)."""
