"""deepnets: distributed training and ablation sweeps for image classifiers on Ray."""
