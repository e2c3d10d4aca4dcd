"""Serve a trained model over HTTP: an OpenAI-style completions API and a web page."""
