"""Studies made with the harness, outside the product: the tiny world's base and AHN training, its claims
and its follow-up questions, the paper's claims on the real base, and the shared-context comparison. Run each as
``python -m studies.<name>`` from the repository root."""
