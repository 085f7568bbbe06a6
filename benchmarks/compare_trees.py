"""get_hot of this tree beside another commit's, in one run: ``make bench-compare REV=<rev>``.

Ratios from two ``make bench`` runs differ by 10-20 points on a shared machine, more
than most changes move them. This serves the service from this tree (``deployment``)
and from ``REV`` (a detached ``git worktree``, removed after; the same virtual
environment) on one database, Redis prefix and set of cached records, beside the
ceiling app, and measures in turn, ``BENCH_ROUNDS`` (3) times: the ceiling's ``/cached``,
get_hot here, get_hot of ``REV``. Each round prints both as shares of its ceiling.
Nothing is written to docs/.
"""

import argparse
import asyncio
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.deployment import BenchConfig, deployment, service_server
from benchmarks.http_suite import HOT, READ_SET, ceiling_server
from benchmarks.seeding import read_all, record_ids, seed_records
from benchmarks.servers import ROOT
from benchmarks.support import env_count
from benchmarks.wrk_load import run_wrk


@contextmanager
def checked_out(revision: str) -> Iterator[Path]:
    """``revision`` in a detached worktree of this repository, removed on the way out."""
    parent = Path(tempfile.mkdtemp(prefix="crucible-compare-"))
    tree = parent / "tree"
    git = ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "--detach", str(tree), revision], check=True)  # noqa: S603
    try:
        yield tree
    finally:
        subprocess.run([*git, "remove", "--force", str(tree)], check=False)  # noqa: S603
        parent.rmdir()


async def compare(config: BenchConfig, revision: str, rounds: int) -> None:
    with checked_out(revision) as tree:
        async with deployment(config, prefix="bench_compare") as deployed:
            other_log = deployed.workdir / "other.log"
            async with (
                service_server(
                    deployed.env, workers=config.workers, log=other_log, root=tree
                ) as other,
                ceiling_server(deployed, config.workers, "ceiling") as ceiling,
            ):
                prefix = f"c{uuid.uuid4().hex[:6]}-{HOT}-"
                ids = record_ids(prefix, READ_SET[HOT])
                async with httpx.AsyncClient(base_url=deployed.service.url, timeout=30) as client:
                    await seed_records(client, ids)
                    await read_all(client, ids)
                hot = [prefix, str(len(ids))]
                runs: dict[str, tuple[str, str, list[str]]] = {
                    "ceiling /cached": (ceiling.url, "static.lua", ["/cached"]),
                    "get_hot, this tree": (deployed.service.url, "get.lua", hot),
                    f"get_hot, {revision}": (other.url, "get.lua", hot),
                }
                for round_number in range(1, rounds + 1):
                    rates: list[float] = []
                    for name, (url, script, args) in runs.items():
                        for duration in (config.warmup_s, config.duration_s):
                            measured = await run_wrk(
                                name,
                                url,
                                script,
                                args,
                                duration_s=duration,
                                connections=config.connections,
                                threads=config.threads,
                            )
                        rates.append(measured.rate)
                        print(
                            f"  {name:<28} {measured.rate:>9,.0f} req/s  p50 "
                            f"{measured.p50_ms:6.2f} ms  p99 {measured.p99_ms:7.2f} ms  "
                            f"errors {measured.errors}",
                            flush=True,
                        )
                    ceiling_rate, here, there = rates
                    print(
                        f"round {round_number}: this tree {here / ceiling_rate:.0%}, "
                        f"{revision} {there / ceiling_rate:.0%} of the ceiling",
                        flush=True,
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("revision", help="the commit to compare with (e.g. HEAD~1)")
    arguments = parser.parse_args()
    config = BenchConfig.from_env()
    asyncio.run(compare(config, arguments.revision, env_count("BENCH_ROUNDS", 3)))


if __name__ == "__main__":
    main()
