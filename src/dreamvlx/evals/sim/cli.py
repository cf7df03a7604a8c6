"""``dreamvlx eval sim``: closed-loop evaluation on Meta-World or LIBERO.

Examples::

    dreamvlx eval sim --env metaworld --suite mt10 --policy scripted --episodes 10 --workers 2 --out runs/mw
    dreamvlx eval sim --env libero --suite spatial,object --policy checkpoint:ckpt/ --episodes 50 --out runs/lb
    dreamvlx eval sim --env libero --suite 10 --policy remote:localhost:8000 --out runs/lb10
    dreamvlx eval sim --env libero --list-suites

Policies: ``scripted`` (Meta-World's experts), ``random`` (uniform in the action bounds),
``checkpoint:PATH`` (``DreamVLA.from_pretrained(PATH)``), ``remote:HOST:PORT`` (a ``dreamvlx serve``
or other openpi-protocol server). Writes ``results.json``, ``success_rates.png`` and ``videos/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from typing import Any

from dreamvlx.envs.policy import FlatObservationPolicy, ModelPolicy, PerTaskPolicy, Policy, RandomPolicy

ENVS = ("metaworld", "libero")
DEFAULT_SUITE = {"metaworld": "mt10", "libero": "spatial"}
DEFAULT_EPISODES = {"metaworld": 10, "libero": 50}
DEFAULT_SEED = 7  # the official LIBERO evaluation's set_seed_everywhere(7)
METAWORLD_CAMERAS = ("corner", "gripperPOV")  # primary first, as the data command records them


# ----------------------------------------------------------------------------------------------------
# Picklable factories (each worker process calls them)
# ----------------------------------------------------------------------------------------------------


def make_metaworld_env(
    suite: str, task: str, *, cameras: tuple[str, ...], image_size: int, seed: int, max_steps: int | None
) -> Any:
    from dreamvlx.envs.metaworld import MetaWorldEnv

    return MetaWorldEnv(task, cameras=cameras, image_size=image_size, seed=seed, max_steps=max_steps)


def make_libero_env(suite: str, task: str, *, max_steps: int | None, center_crop: bool) -> Any:
    from dreamvlx.envs.libero import LiberoEnv

    return LiberoEnv(suite, task, max_steps=max_steps, center_crop=center_crop)


def make_scripted_metaworld_policy() -> Policy:
    from dreamvlx.envs.policy import ScriptedMetaWorldPolicy

    return PerTaskPolicy(ScriptedMetaWorldPolicy, uses_images=False)


def load_checkpoint_policy(
    path: str, cameras: tuple[str, ...], unnorm_key: str | None, device: str | None
) -> Policy:
    from dreamvlx import DreamVLA

    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    model = DreamVLA.from_pretrained(path, **({"device": device} if device else {}))
    return ModelPolicy(model, cameras, unnorm_key=unnorm_key)


def connect_remote_policy(host: str, port: int, cameras: tuple[str, ...]) -> Policy:
    from dreamvlx.serve.client import RemotePolicy

    return FlatObservationPolicy(RemotePolicy(host, port), cameras)


# ----------------------------------------------------------------------------------------------------
# Argument handling
# ----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreamvlx eval sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", choices=ENVS, required=True)
    parser.add_argument(
        "--suite",
        help="metaworld: mt10, mt50 or comma-separated task names; libero: comma-separated suites "
        "(spatial, object, goal, 10, 90 or LIBERO-PRO names such as spatial_swap). Default mt10 / spatial",
    )
    parser.add_argument("--policy", help="scripted | random | checkpoint:PATH | remote:HOST:PORT")
    parser.add_argument("--episodes", type=int, help="episodes per task (default 10 Meta-World, 50 LIBERO)")
    parser.add_argument(
        "--first-episode", type=int, default=0, help="index of the first episode (init state)"
    )
    parser.add_argument("--tasks", help="libero: comma-separated task indices or names within each suite")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--replan-every", type=int, help="actions executed per chunk (default: the whole chunk)"
    )
    parser.add_argument("--max-steps", type=int, help="step limit (default: the protocol's, per suite)")
    parser.add_argument("--videos", type=int, default=2, help="number of episodes to record")
    parser.add_argument("--video-format", choices=("mp4", "gif"), default="mp4")
    parser.add_argument("--video-fps", type=int, default=30)
    parser.add_argument(
        "--cameras",
        help="metaworld: cameras, primary first (default: as many of corner,gripperPOV as a checkpoint's "
        "platform takes, both for other policies)",
    )
    parser.add_argument("--image-size", type=int, default=224, help="metaworld: rendered image side")
    parser.add_argument("--no-center-crop", action="store_true", help="libero: skip the 0.9-area centre crop")
    parser.add_argument(
        "--unnorm-key", help="checkpoint: normalisation-statistics key (default: from the suite)"
    )
    parser.add_argument("--device", help="checkpoint: device for the model (e.g. cuda)")
    parser.add_argument(
        "--list-suites", action="store_true", help="libero: print the runnable suites and exit"
    )
    return parser


def _policy_factory(spec: str, env: str, cameras: tuple[str, ...], args: argparse.Namespace) -> Any:
    if spec == "scripted":
        if env != "metaworld":
            raise ValueError("--policy scripted: scripted experts exist for Meta-World only")
        return make_scripted_metaworld_policy
    if spec == "random":
        from dreamvlx.envs.libero import LiberoEnv
        from dreamvlx.envs.metaworld import MetaWorldEnv

        env_cls = MetaWorldEnv if env == "metaworld" else LiberoEnv
        return partial(RandomPolicy, env_cls.action_low, env_cls.action_high, 1, None)
    if spec.startswith("checkpoint:"):
        path = spec.split(":", 1)[1]
        if not path:
            raise ValueError("--policy checkpoint:PATH needs a path")
        if not os.path.exists(path):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return partial(load_checkpoint_policy, path, cameras, args.unnorm_key, args.device)
    if spec.startswith("remote:"):
        host, _, port = spec.split(":", 1)[1].rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--policy remote:HOST:PORT expected, got {spec!r}")
        return partial(connect_remote_policy, host, int(port), cameras)
    raise ValueError(f"unknown --policy {spec!r}; use scripted, random, checkpoint:PATH or remote:HOST:PORT")


def metaworld_cameras(cameras_arg: str | None, policy_spec: str) -> tuple[str, ...]:
    """The cameras to render: ``--cameras`` when given; for ``checkpoint:PATH`` the first ``num_images`` of
    :data:`METAWORLD_CAMERAS` (the platform stored in the checkpoint's ``config.json``, so a one-camera model
    is not handed two images); otherwise all of them."""
    if cameras_arg:
        return tuple(c.strip() for c in cameras_arg.split(",") if c.strip())
    config_path = os.path.join(policy_spec.removeprefix("checkpoint:"), "config.json")
    if not policy_spec.startswith("checkpoint:") or not os.path.isfile(config_path):
        return METAWORLD_CAMERAS
    from dreamvlx.modeling.dream_vla import DreamVLAConfig

    with open(config_path) as handle:
        settings = DreamVLAConfig.from_dict(json.load(handle)).vla_settings
    if settings is None:
        return METAWORLD_CAMERAS  # an official checkpoint without settings: the loader asks for them anyway
    return METAWORLD_CAMERAS[: settings.robot.num_images]


def _libero_suite_tasks(suites: list[str], tasks_arg: str | None, episodes: range) -> list[tuple[str, str]]:
    """The ``(suite, task)`` pairs to run; checks that every task has the requested initial states."""
    from dreamvlx.envs.libero import init_state_counts

    pairs = []
    for suite in suites:
        counts = init_state_counts(suite)
        names = list(counts)
        if not names:
            raise ValueError(f"LIBERO suite {suite!r} has no tasks")
        chosen = names
        if tasks_arg:
            chosen = []
            for item in (t.strip() for t in tasks_arg.split(",") if t.strip()):
                if item.isdigit() and int(item) < len(names):
                    chosen.append(names[int(item)])
                elif item in names:
                    chosen.append(item)
                else:
                    raise ValueError(
                        f"--tasks: {item!r} is neither an index < {len(names)} nor a task of {suite}"
                    )
        for name in chosen:
            if episodes.stop > counts[name]:
                raise ValueError(
                    f"{suite}/{name} has {counts[name]} initial states; episodes "
                    f"{episodes.start}..{episodes.stop - 1} were asked for"
                )
        pairs.extend((suite, name) for name in chosen)
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_suites:
        if args.env != "libero":
            parser.error("--list-suites is for --env libero")
        from dreamvlx.envs.libero import ready_suites

        print("\n".join(ready_suites()))
        return 0
    if not args.policy or not args.out:
        parser.error("--policy and --out are required")
    episodes = DEFAULT_EPISODES[args.env] if args.episodes is None else args.episodes
    if episodes < 1 or args.first_episode < 0:
        parser.error("--episodes must be >= 1 and --first-episode >= 0")
    if args.replan_every is not None and args.replan_every < 1:
        parser.error("--replan-every must be >= 1")
    suite_arg = args.suite or DEFAULT_SUITE[args.env]
    episode_range = range(args.first_episode, args.first_episode + episodes)

    from dreamvlx.evals.sim.evaluate import evaluate, format_summary, make_jobs

    try:
        if args.env == "metaworld":
            from dreamvlx.envs.metaworld import resolve_tasks

            cameras = metaworld_cameras(args.cameras, args.policy)
            label = suite_arg.lower() if suite_arg.lower() in ("mt10", "mt50") else "metaworld"
            suite_tasks = [(label, task) for task in resolve_tasks(suite_arg)]
            make_env = partial(
                make_metaworld_env,
                cameras=cameras,
                image_size=args.image_size,
                seed=args.seed,
                max_steps=args.max_steps,
            )
        else:
            from dreamvlx.envs.libero import CAMERAS, resolve_suite

            cameras = tuple(CAMERAS)
            suites = [resolve_suite(s) for s in suite_arg.split(",") if s.strip()]
            suite_tasks = _libero_suite_tasks(suites, args.tasks, episode_range)
            make_env = partial(make_libero_env, max_steps=args.max_steps, center_crop=not args.no_center_crop)
        make_policy = _policy_factory(args.policy, args.env, cameras, args)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    jobs = make_jobs(suite_tasks, episode_range, args.seed, args.videos)
    config = {key: value for key, value in vars(args).items() if key != "list_suites"}
    config.update(suite=suite_arg, episodes=episodes)
    results = evaluate(
        jobs,
        make_env=make_env,
        make_policy=make_policy,
        out_dir=args.out,
        workers=args.workers,
        replan_every=args.replan_every,
        video_format=args.video_format,
        fps=args.video_fps,
        config=config,
        title=f"{args.env} {suite_arg}: {args.policy}",
    )
    print(format_summary(results))
    print(f"results: {os.path.join(args.out, 'results.json')}")
    return 1 if results["errors"] == len(results["episodes"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
