"""Interoperability with other frameworks' weight formats (``fcnn.interop.torch``)."""
