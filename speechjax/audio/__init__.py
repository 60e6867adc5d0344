"""Signal processing and audio file helpers; framework-free where possible."""
