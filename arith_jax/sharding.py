"""Device mesh, shardings and multi-host start-up.

One mesh per group with axes ('pop', 'data'): members spread over devices first, and when
there are more devices than members each member's batch is split over the 'data' axis.
Sizes come from gcds so any device count works with any member count: 3 members on 4
devices train data-parallel over 4; 8 members on 4 devices put 2 members on each.
"""

from __future__ import annotations

import logging
import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from arith_jax.errors import ConfigError

POP, DATA = "pop", "data"


def initialize_distributed(coordinator: str = "", num_processes: int = 0, process_id: int = -1,
                           auto: bool = False) -> None:
    """Join JAX's multi-controller runtime when there is more than one process.

    On Cloud TPU (and other clusters JAX knows) `jax.distributed.initialize()` finds its
    peers by itself: `auto` (the CLI's --distributed, which `arith-jax launch` passes). Other
    machines (and the tests: several CPU processes on 127.0.0.1) name the coordinator.
    """
    if coordinator:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    elif auto:
        jax.distributed.initialize()


def mesh_shape(num_members: int, batch_size: int, num_devices: int) -> tuple[int, int]:
    pop = math.gcd(num_members, num_devices)
    data = math.gcd(batch_size, num_devices // pop)
    return pop, data


def make_mesh(num_members: int, batch_size: int) -> Mesh:
    devices = jax.devices()
    pop, data = mesh_shape(num_members, batch_size, len(devices))
    if pop * data < len(devices) and jax.process_count() > 1:
        # Every process must own part of the mesh, so multi-host runs need sizes that divide.
        raise ConfigError("train.batch_size", f"{num_members} members x batch {batch_size} cannot use all "
                                              f"{len(devices)} devices of a multi-host run; make the member count "
                                              "or the batch size a multiple of the device count")
    if pop * data < len(devices):
        logging.warning("using %d of %d devices: %d members x batch %d do not divide the device count",
                        pop * data, len(devices), num_members, batch_size)
    grid = np.asarray(devices[: pop * data]).reshape(pop, data)
    return Mesh(grid, (POP, DATA))


def member_sharding(mesh: Mesh) -> NamedSharding:
    """Leading member axis split over 'pop'; everything else replicated."""
    return NamedSharding(mesh, P(POP))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_spec() -> P:
    """For a per-member [B, ...] array inside `vmap(..., spmd_axis_name='pop')`."""
    return P(DATA)


def _put(tree, sharding: NamedSharding):
    """Host arrays (the same on every process) as global arrays: each process supplies its
    devices' slices, which works across hosts where jax.device_put does not."""
    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree.map(put, tree)


def put_members(tree, mesh: Mesh):
    """A host pytree with a leading member axis, split over 'pop'."""
    return _put(tree, member_sharding(mesh))


def gather(tree):
    """Fetch (possibly multi-host) global arrays to numpy on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)


def put_replicated(tree, mesh: Mesh):
    """The same host arrays on every device of the mesh (eval operands)."""
    return _put(tree, replicated(mesh))


def put_host_chunk(tree, mesh: Mesh):
    """Host inputs laid out [steps, members, ...]: the member axis goes over 'pop'."""
    return _put(tree, NamedSharding(mesh, P(None, POP)))
