"""The experiment config: typed sections resolved from an ml_collections ConfigDict.

  configuration   `ExperimentConfig`, its sections and `resolve`
  network         `NetworkConfig`, the network size variants
  objective       `ObjectiveConfig`, the weights and forms of Eq. 6
  baselines       `BaselineConfig` and the model kinds

A leaf above the data and the flow math: it imports no model code.
"""
