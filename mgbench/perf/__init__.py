"""Cost estimates and measurements: what a run costs, how close it comes to the hardware, where its time goes.

``cost`` (FLOPs and bytes per clip, the hardware limit, GPU profiles for devices that are not here), ``calibration``
(``mgbench plan``'s short measurement on a device that is here), ``profile`` (the per-step split of a generation).
Imports ``engine`` and ``zoo``.
"""
