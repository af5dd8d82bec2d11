"""PyTorch reference data for dlcore's conventions tests (run by hand where torch is installed).

Each area module (``losses``, ``optim``, ``layers``) has ``make() -> dict[str, np.ndarray]``:
float64 inputs from a fixed NumPy seed, PyTorch's weights, outputs and gradients. The tests
compare dlcore against the committed ``tests/references/torch_<area>.npz`` without torch.
"""
