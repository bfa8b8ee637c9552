"""Oracle: the most hits any policy can get on this trace (needs the future: model traces).

Belady's rule (evict the key used furthest ahead) is optimal only when a missed key is
fetched back into the cache. Here an evicted key never returns, and then Belady can
lose: it may drop a key with many accesses soon after a key with one access a little
sooner. So the oracle solves the offline problem exactly, as a min-cost flow:

  timeline nodes T_0..T_n, arc T_s → T_(s+1) = a free slot in the cache after step s
  (capacity C, cost 0); key j accessed at a_1 < a_2 < …: a chain T_j → K_1 → K_2 → …
  whose arcs (capacity 1, cost −1) hold the key through its next access, and K_k → T_(a_k)
  lets it go after the k-th. C units flow T_0 → T_n; −cost = hits.

The plan gives each key the step of its last planned hit (`plan_end`, or its own
position if it is not worth keeping); the simulation evicts the cached key with the
smallest plan_end (ties: older). After step t at most C keys have plan_end > t, so the
victim's plan is always done, and the run gets exactly the optimum.
Successive shortest paths with Dijkstra on reduced costs; stops when a path no longer
gains a hit. The accesses come from the trace's rows (rows.row, dense or compact), one row at a time.
"""
import numpy as np
from numba import njit

from .rows import row
from .state import KEY, heap_pop, heap_push

_BIG = np.int64(1) << 60


@njit(cache=True)
def on_insert(slots, heap, ctr, s, t, plan_end):
    slots[s, KEY] = plan_end[t]
    heap_push(slots, heap, ctr, s)


@njit(cache=True)
def victim(slots, heap, ctr):
    return heap_pop(slots, heap, ctr)


@njit(cache=True)
def _add_arc(head, cap, cost, tail, m, u, v, c, w):
    """Arc 2m: u → v; its residual twin 2m + 1: v → u."""
    tail[2 * m], head[2 * m], cap[2 * m], cost[2 * m] = u, v, c, w
    tail[2 * m + 1], head[2 * m + 1], cap[2 * m + 1], cost[2 * m + 1] = v, u, 0, -w
    return m + 1


@njit(cache=True)
def _full_row(kind, weights, t, sp, heavy, ridx, rval, w):
    """w[0..t] = row t's weight on each key (a model row, dense or compact: bg + its listed extras)."""
    cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)
    for j in range(t + 1):
        w[j] = bg
    for e in range(cnt):
        w[ridx[e]] += rval[e]


@njit(cache=True, nogil=True)
def count_accesses(kind, weights, n, tau, sp, heavy, ridx, rval):
    """Per key j, its accesses over the whole trace (queries t > j with weight ≥ τ), one row at a time: O(n) memory."""
    count = np.zeros(n, np.int64)
    w = np.zeros(n, np.int64)
    for t in range(n):
        _full_row(kind, weights, t, sp, heavy, ridx, rval, w)
        for j in range(t):
            if w[j] >= tau:
                count[j] += 1
    return count


@njit(cache=True, nogil=True)  # other threads (the UI polling this job) run meanwhile
def plan(kind, weights, n, capacity, tau, sp, heavy, ridx, rval):
    plan_end = np.arange(n).astype(np.int64)
    # Accesses per key, in time order.
    count = count_accesses(kind, weights, n, tau, sp, heavy, ridx, rval)
    start = np.zeros(n + 1, np.int64)
    for j in range(n):
        start[j + 1] = start[j] + count[j]
    n_acc = start[n]
    times = np.empty(n_acc, np.int64)
    fill = start[:n].copy()
    w = np.zeros(n, np.int64)
    for t in range(n):
        _full_row(kind, weights, t, sp, heavy, ridx, rval, w)
        for j in range(t):
            if w[j] >= tau:
                times[fill[j]] = t
                fill[j] += 1
    # The graph: timeline arcs, then per key: entry, and per access: exit, then chain.
    nv = n + 1 + n_acc
    na = n + 2 * n_acc
    head = np.empty(2 * na, np.int64)
    tail = np.empty(2 * na, np.int64)
    cap = np.empty(2 * na, np.int64)
    cost = np.empty(2 * na, np.int64)
    entry = np.full(n, -1, np.int64)
    chain = np.full(n_acc, -1, np.int64)
    m = 0
    for s in range(n):
        m = _add_arc(head, cap, cost, tail, m, s, s + 1, capacity, 0)
    for j in range(n):
        if count[j] == 0:
            continue
        entry[j] = 2 * m
        m = _add_arc(head, cap, cost, tail, m, j, n + 1 + start[j], 1, -1)
        for k in range(start[j], start[j + 1]):
            m = _add_arc(head, cap, cost, tail, m, n + 1 + k, times[k], 1, 0)
            if k + 1 < start[j + 1]:
                chain[k] = 2 * m
                m = _add_arc(head, cap, cost, tail, m, n + 1 + k, n + 2 + k, 1, -1)
    # Adjacency (CSR), arcs of a node in arc order.
    deg = np.zeros(nv + 1, np.int64)
    for a in range(2 * na):
        deg[tail[a] + 1] += 1
    for v in range(nv):
        deg[v + 1] += deg[v]
    adj = np.empty(2 * na, np.int64)
    pos = deg[:nv].copy()
    for a in range(2 * na):
        adj[pos[tail[a]]] = a
        pos[tail[a]] += 1
    # Potentials: shortest distances in the DAG (time order; a chain node before T of its time).
    pot = np.full(nv, _BIG, np.int64)
    pot[0] = 0
    by_time = np.zeros(n + 2, np.int64)
    for k in range(n_acc):
        by_time[times[k] + 1] += 1
    for s in range(n + 1):
        by_time[s + 1] += by_time[s]
    order = np.empty(n_acc, np.int64)
    bpos = by_time[: n + 1].copy()
    for k in range(n_acc):
        order[bpos[times[k]]] = n + 1 + k
        bpos[times[k]] += 1
    for s in range(n + 1):
        for i in range(by_time[s], by_time[s + 1]):
            _relax_forward(order[i], pot, deg, adj, head, cap, cost)
        _relax_forward(s, pot, deg, adj, head, cap, cost)
    # Successive shortest paths.
    dist = np.empty(nv, np.int64)
    pred = np.empty(nv, np.int64)
    done = np.empty(nv, np.bool_)
    hq = np.empty(2 * na + nv, np.int64)
    sent = 0
    while sent < capacity:
        d_sink = _dijkstra(0, n, nv, pot, dist, pred, done, hq, deg, adj, head, cap, cost)
        if d_sink >= _BIG:
            break
        for v in range(nv):
            pot[v] += min(dist[v], d_sink)
        if pot[n] - pot[0] >= 0:
            break  # no path gains a hit any more
        f = capacity - sent
        v = n
        while v != 0:
            f = min(f, cap[pred[v]])
            v = tail[pred[v]]
        v = n
        while v != 0:
            cap[pred[v]] -= f
            cap[pred[v] ^ 1] += f
            v = tail[pred[v]]
        sent += f
    # Read the plan: how far along its chain each key's unit went.
    for j in range(n):
        if entry[j] >= 0 and cap[entry[j]] == 0:
            k = start[j]
            while chain[k] >= 0 and cap[chain[k]] == 0:
                k += 1
            plan_end[j] = times[k]
    return plan_end


@njit(cache=True)
def _relax_forward(u, pot, deg, adj, head, cap, cost):
    if pot[u] >= _BIG:
        return
    for i in range(deg[u], deg[u + 1]):
        a = adj[i]
        if a & 1 == 0 and cap[a] > 0 and pot[u] + cost[a] < pot[head[a]]:
            pot[head[a]] = pot[u] + cost[a]


@njit(cache=True)
def _dijkstra(src, sink, nv, pot, dist, pred, done, hq, deg, adj, head, cap, cost):
    """Shortest path on reduced costs; heap entries are dist·2^32 + node, so ties pop the lower node."""
    for v in range(nv):
        dist[v] = _BIG
        pred[v] = -1
        done[v] = False
    dist[src] = 0
    hn = 0
    hn = _hpush(hq, hn, src)
    while hn > 0:
        key = hq[0]
        hn = _hpop(hq, hn)
        u = key & 0xFFFFFFFF
        if done[u]:
            continue
        done[u] = True
        if u == sink:
            return dist[sink]
        for i in range(deg[u], deg[u + 1]):
            a = adj[i]
            if cap[a] > 0:
                v = head[a]
                nd = dist[u] + cost[a] + pot[u] - pot[v]
                if nd < dist[v]:
                    dist[v] = nd
                    pred[v] = a
                    hn = _hpush(hq, hn, (nd << 32) | v)
    return dist[sink]


@njit(cache=True)
def _hpush(hq, hn, key):
    i = hn
    while i > 0:
        p = (i - 1) >> 1
        if hq[p] <= key:
            break
        hq[i] = hq[p]
        i = p
    hq[i] = key
    return hn + 1


@njit(cache=True)
def _hpop(hq, hn):
    hn -= 1
    key = hq[hn]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= hn:
            break
        if c + 1 < hn and hq[c + 1] < hq[c]:
            c += 1
        if hq[c] >= key:
            break
        hq[i] = hq[c]
        i = c
    hq[i] = key
    return hn
