"""liftlock's ML side: the DVC stages, the model bundle and the model service.

A stage run (`python -m ml.<stage>`) imports this package before its own module, and so before
numpy: the numeric environment is pinned here (ml/numeric_env.py), once, for every stage.
"""

from ml.numeric_env import pin_if_stage

pin_if_stage()
