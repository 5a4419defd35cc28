"""The streaming binary recording: its format (``format``), the writer (``writer``) and the reader (``reader``)."""
