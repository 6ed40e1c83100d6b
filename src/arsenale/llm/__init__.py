"""LLMOps: traced prompt-response interactions, the prompt registry and evaluation."""
