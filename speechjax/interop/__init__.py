"""Weight and config interop with other frameworks (HF transformers)."""
