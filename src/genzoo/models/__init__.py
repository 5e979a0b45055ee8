"""Model families. Each module registers its models by name (see :mod:`genzoo.registry`)."""
