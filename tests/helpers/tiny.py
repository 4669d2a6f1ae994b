"""The tiny training config every end-to-end test starts from."""

# A 0.37M-parameter timm ResNet on 30 classes × 12 images: enough for real batches, fast to train.
TINY_OVERRIDES = [
    "model=tiny",
    "data.options.num_classes=30",
    "data.options.samples_per_class=12",
    "data.batch_size=32",
    "data.eval_batch_size=128",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=csv",
    "evaluation.leakage=false",
]
