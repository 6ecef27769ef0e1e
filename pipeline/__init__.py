"""spinemet: imaging-assisted assessment of metastatic spine disease.

Research use only: spinemet is decision support, not a medical device.
"""

__version__ = "0.1.0"
