"""Device mesh, shardings and multi-host start-up.

One mesh per group with axes ('pop', 'data'): members spread over devices first, and when
there are more devices than members each member's batch is split over the 'data' axis.
Sizes come from gcds so any device count works with any member count: 3 members on 4
devices train data-parallel over 4; 8 members on 4 devices put 2 members on each.
"""

from __future__ import annotations

import logging
import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

POP, DATA = "pop", "data"


def initialize_distributed(coordinator: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """Join JAX's multi-controller runtime when there is more than one process.

    On Cloud TPU `jax.distributed.initialize()` finds its peers by itself; on other machines
    (and in the tests: several CPU processes on 127.0.0.1) the coordinator is explicit.
    """
    if coordinator:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    elif os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("CLOUD_TPU_TASK_ID"):
        jax.distributed.initialize()


def mesh_shape(num_members: int, batch_size: int, num_devices: int) -> tuple[int, int]:
    pop = math.gcd(num_members, num_devices)
    data = math.gcd(batch_size, num_devices // pop)
    return pop, data


def make_mesh(num_members: int, batch_size: int) -> Mesh:
    devices = jax.devices()
    pop, data = mesh_shape(num_members, batch_size, len(devices))
    if pop * data < len(devices):
        # Multi-host needs every process in the mesh, so a partial mesh is only a single-host
        # fallback; the warning tells the user which sizes would use every device.
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


def put_members(tree, mesh: Mesh):
    """Place a host pytree with a leading member axis onto the mesh (multi-host safe)."""
    sharding = member_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda idx, x=x: np.asarray(x)[idx]),
        tree)


def gather(tree):
    """Fetch (possibly multi-host) global arrays to numpy on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)


def put_replicated(x, mesh: Mesh):
    """The same host array on every device of the mesh (eval operands)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, replicated(mesh), lambda idx: x[idx])


def put_host_chunk(tree, mesh: Mesh):
    """Host inputs laid out [steps, members, ...]: the member axis goes over 'pop'."""
    sharding = NamedSharding(mesh, P(None, POP))
    return jax.tree.map(
        lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda idx, x=x: np.asarray(x)[idx]),
        tree)
