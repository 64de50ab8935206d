"""Custom Rasa NLU components. Rasa imports this package when it loads the model, so the measured
fixes to Rasa's internals (bot/rasa_patches.py) are applied in every Rasa server that runs it."""
from bot import rasa_patches

rasa_patches.apply()
