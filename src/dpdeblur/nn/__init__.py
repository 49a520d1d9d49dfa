"""Building blocks shared by the models: correlation, modulated deformable conv, res blocks."""
