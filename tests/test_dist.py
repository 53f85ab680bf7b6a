from lavis.common import dist


def test_detect_env_torchrun_slurm_and_plain():
    env = dist.detect_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (3, 8, 1, "torchrun")
    env = dist.detect_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "2"})
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (5, 16, 2, "slurm")
    env = dist.detect_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"})  # an interactive srun shell
    assert not env.distributed and env.launcher == "none"
    assert dist.detect_env({}).world_size == 1


def test_single_process_collectives_need_no_process_group(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    env = dist.init_distributed()
    assert not env.distributed and not dist.is_dist()
    dist.barrier()  # must not raise outside a process group
    assert dist.all_gather_object({"a": 1}) == [{"a": 1}]
    assert dist.broadcast_object("x") == "x"
    assert dist.all_reduce_mean(2.5) == 2.5
    assert dist.get_rank() == 0 and dist.get_world_size() == 1 and dist.is_main_process()
