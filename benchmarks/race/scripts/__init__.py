"""The race's plain PyTorch and Keras scripts and the NumPy data they share (run each file
as a script: ``python benchmarks/race/scripts/train_torch_mlp.py``)."""
