"""Stages that bring outside data in: Dolma documents from any tool (``importer``) and web pages (``web``)."""
