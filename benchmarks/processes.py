"""This process and its children (the Spark JVM, its Python workers) as Linux's ``/proc`` shows
them: the process tree, and CPU time split by who spent it. Elsewhere nothing is reported."""

from __future__ import annotations

import os

# JVM threads by the first characters of their names (Linux keeps 15): HotSpot's JIT compilers,
# Spark's task threads, the garbage collector's threads; anything else, and threads that ended
# (an idle task thread ends after a minute), is "jvm_other".
_JVM_THREAD_GROUPS = (
    ("jvm_jit", ("C1 CompilerThre", "C2 CompilerThre")),
    ("jvm_tasks", ("Executor task",)),
    ("jvm_gc", ("GC Thread", "G1 ")),
)


def children() -> dict[int, list[tuple[int, str]]]:
    """ppid -> [(pid, command name)] for every process.

    Example::

        >>> os.getpid() in {pid for found in children().values() for pid, _ in found}  # doctest: +SKIP
        True
    """
    tree: dict[int, list[tuple[int, str]]] = {}
    if not os.path.isdir("/proc"):
        return tree
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                text = handle.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append((int(entry), name))
    return tree


def descendants(pid: int, tree=None) -> list[tuple[int, str]]:
    """``(pid, command name)`` of every process below ``pid``."""
    tree = children() if tree is None else tree
    found, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _cpu_times(stat_path: str) -> tuple[float, float]:
    """utime + stime of one process or thread, and of its children it waited for, in seconds;
    zeros when it is gone."""
    try:
        with open(stat_path) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _thread_name(pid: int, tid: str) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def cpu_split(pid: int | None = None) -> dict[str, float]:
    """CPU seconds spent so far by ``pid`` (default: this process, the driver's Python), by the
    JVM below it thread group by thread group, and by the Python processes below the JVM (the
    workers, those that ended included). Take two and subtract.

    Example::

        >>> before = cpu_split(); spark.range(10).count(); after = cpu_split()   # doctest: +SKIP
        >>> {k: round(after[k] - before.get(k, 0), 2) for k in after}            # doctest: +SKIP
        {'driver_python': 0.02, 'jvm_jit': 0.4, 'jvm_tasks': 0.05, 'jvm_gc': 0.0, 'jvm_other': 0.1, 'python_workers': 0.0}
    """
    pid = os.getpid() if pid is None else pid
    if not os.path.isdir(f"/proc/{pid}"):
        return {}
    split = {"driver_python": _cpu_times(f"/proc/{pid}/stat")[0]}
    tree = children()
    for jvm, _ in [(p, name) for p, name in descendants(pid, tree) if name == "java"]:
        # The process counts threads that have ended too: what no live group holds is "other".
        grouped = 0.0
        try:
            threads = os.listdir(f"/proc/{jvm}/task")
        except OSError:  # the JVM has just ended
            continue
        for tid in threads:
            name = _thread_name(jvm, tid)
            group = next((g for g, prefixes in _JVM_THREAD_GROUPS if name.startswith(prefixes)), None)
            if group is not None:
                seconds = _cpu_times(f"/proc/{jvm}/task/{tid}/stat")[0]
                split[group] = split.get(group, 0.0) + seconds
                grouped += seconds
        jvm_own, reaped = _cpu_times(f"/proc/{jvm}/stat")
        split["jvm_other"] = split.get("jvm_other", 0.0) + jvm_own - grouped
        # PySpark's daemon forks the workers and waits for them: a worker that ended is in the
        # daemon's children's time, one still running in its own.
        workers = [p for p, name in descendants(jvm, tree) if name.startswith("python")]
        split["python_workers"] = split.get("python_workers", 0.0) + reaped + sum(
            sum(_cpu_times(f"/proc/{p}/stat")) for p in workers)
    return split


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """``after - before`` per group, rounded to 0.01 s; None where the total went down (a
    process ended that no process of the tree waited for, taking its time with it).

    Example::

        >>> cpu_spent({"jvm_jit": 1.0, "python_workers": 9.0}, {"jvm_jit": 3.5, "jvm_tasks": 2.0, "python_workers": 1.0})
        {'jvm_jit': 2.5, 'jvm_tasks': 2.0, 'python_workers': None}
    """
    spent = {group: round(seconds - before.get(group, 0.0), 2) for group, seconds in after.items()}
    return {group: None if seconds < 0 else seconds for group, seconds in spent.items()}
