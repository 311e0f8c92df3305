"""Run the train stage in a fresh process whose one CPU shows as N logical devices.

Usage: python tests/train_on_cpus.py PARAMS_YAML N. Prints the TrainResult (minus the
history) as one JSON line. Logical devices can only be configured before TensorFlow's
runtime starts, hence a process of its own rather than a pytest fixture.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path


def main(params_file: Path, devices: int) -> None:
    from imgclf.tfruntime import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)

    from imgclf.params import load_params
    from imgclf.stages import train

    result = asdict(train.run(load_params(params_file)))
    del result["history"]
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
