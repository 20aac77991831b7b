"""Every Cypher statement the graph store runs, in one place. All of them run unchanged on Neo4j 5 and on
ArcadeDB's Bolt server (26.10): no APOC, no GDS, no ``CALL {} IN TRANSACTIONS``, no server-specific syntax.

Server differences met while writing these (ArcadeDB 26.10.2 vs Neo4j 5), and how they are handled:

- Stored ``datetime`` values: ArcadeDB's default ``LocalDateTime`` storage drops the zone (values come back
  naive, ``.epochMillis`` is null). The embedded server is started with
  ``-Darcadedb.dateTimeImplementation=java.time.ZonedDateTime`` (see ``server.py``), after which stored
  datetimes round-trip as UTC with nanoseconds, as on Neo4j. The reader also treats a naive value as UTC.
- Temporal functions on datetime *parameters*: ArcadeDB rejects ``duration.between($t, x)`` and
  ``datetime($t)`` ("Expected temporal value but got: OffsetDateTime"); comparisons (``r.as_of <= $t``) work.
  No statement here applies a temporal function to a parameter; the exploration queries in docs/graph.md use
  literals (``datetime('2024-06-01T00:00:00Z')``) or stored values.
- ``from``/``to`` as property names are backticked everywhere (```from```), which both servers accept.
- Inline relationship property maps with a datetime parameter match nothing on ArcadeDB:
  ``MATCH ()-[r:CORRELATED_WITH {as_of: $t}]->()`` returns 0 rows where ``WHERE r.as_of = $t`` returns 287.
  Every statement here filters in ``WHERE``.
- Relationship property indexes: ArcadeDB uses them for ``=`` and ``IN`` on an unlabelled pattern
  (``MATCH (a)-[r:T]->(b) WHERE r.p IN $xs``), not for ranges; see the read queries below. Each one also makes
  deleting a relationship markedly slower there, so there is one per edge type (on ``gen``).
- Uniqueness is on single properties only (``Regime.key`` = ``gen|scope|name``, ``Snapshot.key``,
  ``Community.key``), since single-property uniqueness constraints exist in both servers' community editions.

Reads return times as ``x.epochSeconds`` + ``x.nanosecond`` integers, not datetime values: exact, and
the driver decodes two ints far faster than it hydrates a ``DateTime`` (measured ~10x on regime reads).

Statements that write take ``$rows`` lists of *lists* (positional), not maps: the Python driver packs a
list of lists markedly faster than a list of dicts (measured ~2x on ArcadeDB, see the benchmark), and a
snapshot's ``as_of/method/window`` is sent once per batch in ``$snaps`` and referenced by index.

Builds and generations: everything a build writes carries its generation id ``gen`` (``<build id>:<token>``,
so it names the build). A write creates a new ``(:Generation {state: 'writing'})``, writes its parts, then
switches the ``(:Build {id})`` pointer to it in one statement (:data:`switch_generation_query`); readers
resolve the pointer first and filter every part by ``gen``, so they never see a generation that is being
written or deleted. Superseded generations are claimed (``state: 'deleting'``) and deleted afterwards.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------- schema
# (name, statement). Idempotent: IF NOT EXISTS on both servers.
CONSTRAINTS: tuple[tuple[str, str], ...] = (
    ("asset_symbol", "CREATE CONSTRAINT asset_symbol IF NOT EXISTS FOR (n:Asset) REQUIRE n.symbol IS UNIQUE"),
    ("exchange_id", "CREATE CONSTRAINT exchange_id IF NOT EXISTS FOR (n:Exchange) REQUIRE n.id IS UNIQUE"),
    ("market_id", "CREATE CONSTRAINT market_id IF NOT EXISTS FOR (n:Market) REQUIRE n.id IS UNIQUE"),
    ("build_id", "CREATE CONSTRAINT build_id IF NOT EXISTS FOR (n:Build) REQUIRE n.id IS UNIQUE"),
    ("generation_id", "CREATE CONSTRAINT generation_id IF NOT EXISTS FOR (n:Generation) REQUIRE n.id IS UNIQUE"),
    ("regime_key", "CREATE CONSTRAINT regime_key IF NOT EXISTS FOR (n:Regime) REQUIRE n.key IS UNIQUE"),
    ("snapshot_key", "CREATE CONSTRAINT snapshot_key IF NOT EXISTS FOR (n:Snapshot) REQUIRE n.key IS UNIQUE"),
    ("community_key", "CREATE CONSTRAINT community_key IF NOT EXISTS FOR (n:Community) REQUIRE n.key IS UNIQUE"),
    # The trading mirror (store/ops_trades.py): (:Signal {id: run|cycle|symbol}), (:Trade {id: run|fill_id}).
    ("signal_id", "CREATE CONSTRAINT signal_id IF NOT EXISTS FOR (n:Signal) REQUIRE n.id IS UNIQUE"),
    ("trade_id", "CREATE CONSTRAINT trade_id IF NOT EXISTS FOR (n:Trade) REQUIRE n.id IS UNIQUE"),
)
INDEXES: tuple[tuple[str, str], ...] = (
    ("generation_build", "CREATE INDEX generation_build IF NOT EXISTS FOR (n:Generation) ON (n.build)"),
    ("snapshot_gen", "CREATE INDEX snapshot_gen IF NOT EXISTS FOR (n:Snapshot) ON (n.gen)"),
    ("snapshot_as_of", "CREATE INDEX snapshot_as_of IF NOT EXISTS FOR (n:Snapshot) ON (n.as_of)"),
    ("community_gen", "CREATE INDEX community_gen IF NOT EXISTS FOR (n:Community) ON (n.gen)"),
    ("community_as_of", "CREATE INDEX community_as_of IF NOT EXISTS FOR (n:Community) ON (n.as_of)"),
    ("regime_gen", "CREATE INDEX regime_gen IF NOT EXISTS FOR (n:Regime) ON (n.gen)"),
    ("regime_scope", "CREATE INDEX regime_scope IF NOT EXISTS FOR (n:Regime) ON (n.scope)"),
    ("corr_gen", "CREATE INDEX corr_gen IF NOT EXISTS FOR ()-[r:CORRELATED_WITH]-() ON (r.gen)"),
    ("leads_gen", "CREATE INDEX leads_gen IF NOT EXISTS FOR ()-[r:LEADS]-() ON (r.gen)"),
    ("trade_run", "CREATE INDEX trade_run IF NOT EXISTS FOR (n:Trade) ON (n.run)"),
    ("signal_run", "CREATE INDEX signal_run IF NOT EXISTS FOR (n:Signal) ON (n.run)"),
)
# One relationship index per edge type, on `gen`: reads and deletes of a generation are index lookups. Each
# further relationship index slows edge deletion on ArcadeDB by ~0.1 ms per edge (measured: 42,760 edges
# deleted in 3.8 s with no index, 8.5 s with one, 14.1 s with two), and deletes are half of every re-write.
# Indexes of earlier versions of this schema are dropped by ensure_schema (only these names, never others).
OBSOLETE_INDEXES: tuple[str, ...] = ("corr_as_of", "leads_as_of", "in_regime_from")
SCHEMA_NAMES: frozenset[str] = frozenset(n for n, _ in CONSTRAINTS + INDEXES)


def drop_index_query(name: str) -> str:
    return f"DROP INDEX {name} IF EXISTS"



SHOW_CONSTRAINTS = "SHOW CONSTRAINTS YIELD name RETURN name ORDER BY name"
SHOW_INDEXES = "SHOW INDEXES YIELD name RETURN name ORDER BY name"

NODE_LABELS: tuple[str, ...] = ("Snapshot", "Community", "Regime", "Generation", "Build", "Market", "Asset",
                                "Exchange", "Signal", "Trade")
REL_TYPES: tuple[str, ...] = ("CORRELATED_WITH", "LEADS", "MEMBER_OF", "IN_REGIME", "TRANSITIONS_TO", "LISTED_ON",
                               "OF", "DURING", "FOR")

# --------------------------------------------------------------------------------------------- assets
# rows: [symbol, base, quote]
UPSERT_ASSETS = """
UNWIND $rows AS row
MERGE (a:Asset {symbol: row[0]})
SET a.base = row[1], a.quote = row[2]
"""
# rows: [symbol, base, quote]; $exchange: exchange id (ccxt name)
UPSERT_ASSETS_LISTED = """
MERGE (x:Exchange {id: $exchange})
WITH x
UNWIND $rows AS row
MERGE (a:Asset {symbol: row[0]})
SET a.base = row[1], a.quote = row[2]
MERGE (a)-[:LISTED_ON]->(x)
"""
SYMBOLS = "MATCH (a:Asset) RETURN a.symbol AS symbol ORDER BY symbol"

# The asset nodes of a batch, resolved once and in $syms order; rows then refer to them by index.
# `WHERE size(nodes) = size($syms)` makes the statement create nothing if an asset is missing, which the
# caller detects from the counters (never a silently partial write).
_NODES_PROLOGUE = """
UNWIND range(0, size($syms) - 1) AS i
MATCH (a:Asset {symbol: $syms[i]})
WITH a, i ORDER BY i
WITH collect(a) AS nodes
WHERE size(nodes) = size($syms)
"""

# --------------------------------------------------------------------------------------------- builds
# The pointer of a build names its current complete generation of each kind; KINDS are its property names.
KINDS: tuple[str, ...] = ("snapshots", "regimes")
BEGIN_GENERATION = """
CREATE (:Generation {id: $gen, build: $build, kind: $kind, state: 'writing', started: $now,
                     owner_host: $host, owner_pid: $pid, owner_started: $pstart})
"""


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"generation kind must be one of {KINDS}, got {kind!r}")
    return kind


def switch_generation_query(kind: str) -> str:
    """One statement, one transaction: point the build at ``$gen`` if that generation is still being written
    (not claimed by a cleaner) and return the previous one (``old``, null for a new build). No row: refused."""
    k = _kind(kind)
    return f"""
MATCH (g:Generation {{id: $gen}}) WHERE g.state = 'writing'
MERGE (b:Build {{id: $build}})
ON CREATE SET b.created = $now
WITH b, g, b.{k} AS old
SET b.{k} = $gen, b.updated = $now, b.info = coalesce($info, b.info),
    g.state = 'complete', g.switched = $now, g.n = $n, g.names = $names
RETURN old
"""


def current_generation_query(kind: str) -> str:
    """The generation the build's pointer names (null when the build has none of this kind yet)."""
    k = _kind(kind)
    return f"""
MATCH (b:Build {{id: $build}})
OPTIONAL MATCH (g:Generation) WHERE g.id = b.{k}
RETURN b.{k} AS gen, g.n AS n, g.names AS names
"""


def claim_generation_query(kind: str) -> str:
    """Mark a generation for deletion unless the build's pointer names it; returns 1 when claimed."""
    k = _kind(kind)
    return f"""
MATCH (g:Generation {{id: $gen}}) WHERE g.state IN $states
OPTIONAL MATCH (b:Build {{id: g.build}})
WITH g, b WHERE b IS NULL OR coalesce(b.{k}, '') <> g.id
SET g.state = 'deleting'
RETURN count(g) AS n
"""


GENERATIONS_OF_BUILD = """
MATCH (g:Generation) WHERE g.build = $build AND g.kind = $kind
RETURN g.id AS id, g.state AS state, g.started.epochSeconds AS started_s, g.owner_host AS host,
       g.owner_pid AS pid, g.owner_started AS pstart, g.n AS n
"""
GENERATION_SIZE = "MATCH (g:Generation {id: $gen}) RETURN g.n AS n"
# Deleting a build: the pointer goes first (one transaction), so its generations are no longer current and can
# be claimed and deleted like superseded ones.
DELETE_BUILD_NODE = "MATCH (b:Build {id: $build}) DELETE b RETURN count(*) AS n"
DELETE_GENERATION_NODE = "MATCH (g:Generation {id: $gen}) WHERE g.state = 'deleting' DELETE g"
LIST_BUILDS = """
MATCH (b:Build)
OPTIONAL MATCH (s:Generation) WHERE s.id = b.snapshots
OPTIONAL MATCH (r:Generation) WHERE r.id = b.regimes
RETURN b.id AS build, b.updated.epochSeconds AS t_s, b.updated.nanosecond AS t_ns, b.snapshots AS snapshots_gen,
       s.n AS n_snapshots, b.regimes AS regimes_gen, r.n AS n_regime_records, b.info AS info
ORDER BY t_s DESC, t_ns DESC, build
"""
# Deleting a claimed generation's parts, in bounded chunks ($limit) repeated until nothing is left; the parts
# go before the nodes that find them (Snapshot/Regime), and the Generation node goes last.
DELETE_GENERATION_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "snapshots": (
        ("edges", "MATCH ()-[r:CORRELATED_WITH]->() WHERE r.gen = $gen WITH r LIMIT $limit DELETE r "
                  "RETURN count(*) AS n"),
        ("leads", "MATCH ()-[r:LEADS]->() WHERE r.gen = $gen WITH r LIMIT $limit DELETE r RETURN count(*) AS n"),
        ("communities", "MATCH (c:Community) WHERE c.gen = $gen WITH c LIMIT $limit DETACH DELETE c "
                        "RETURN count(*) AS n"),
        ("snapshot nodes", "MATCH (s:Snapshot) WHERE s.gen = $gen WITH s LIMIT $limit DELETE s RETURN count(*) AS n"),
    ),
    "regimes": (
        ("records", "MATCH (g:Regime) WHERE g.gen = $gen MATCH ()-[r:IN_REGIME]->(g) WITH r LIMIT $limit DELETE r "
                    "RETURN count(*) AS n"),
        ("regime nodes", "MATCH (g:Regime) WHERE g.gen = $gen WITH g LIMIT $limit DETACH DELETE g "
                         "RETURN count(*) AS n"),
    ),
}

# --------------------------------------------------------------------------------------------- snapshots
# rows: {key, as_of, method, window, assets, n_edges, n_leads}; $gen, $build for all of them.
CREATE_SNAPSHOTS = """
UNWIND $rows AS row
CREATE (:Snapshot {key: row.key, build: $build, gen: $gen, as_of: row.as_of, method: row.method,
                   window: row.window, assets: row.assets, n_edges: row.n_edges, n_leads: row.n_leads})
"""
# Edges and leads go as parallel column lists (one list per field, $src[i] etc. is row i), not as a list of
# rows: the client builds each column with one numpy .tolist() instead of a Python list per row (measured on
# 549k edges: client CPU of the row lists 1.3 s, of the columns ~0.1 s), and the server's work per edge is
# the same. Columns: src, dst (indices into $syms), rho, [lag,] snap (index into $snaps).
CREATE_EDGES = _NODES_PROLOGUE + """
UNWIND range(0, size($src) - 1) AS i
WITH nodes[$src[i]] AS a, nodes[$dst[i]] AS b, $rho[i] AS rho, $snaps[$snap[i]] AS s
CREATE (a)-[:CORRELATED_WITH {rho: rho, method: s.method, window: s.window, as_of: s.as_of, gen: $gen}]->(b)
"""
CREATE_LEADS = _NODES_PROLOGUE + """
UNWIND range(0, size($src) - 1) AS i
WITH nodes[$src[i]] AS a, nodes[$dst[i]] AS b, $rho[i] AS rho, $lag[i] AS lag, $snaps[$snap[i]] AS s
CREATE (a)-[:LEADS {lag: lag, rho: rho, method: s.method, window: s.window, as_of: s.as_of, gen: $gen}]->(b)
"""
# rows: [community_key, community_id, snap_index, [member asset indices]]
CREATE_COMMUNITIES = _NODES_PROLOGUE + """
UNWIND $rows AS row
WITH nodes, row, $snaps[row[2]] AS s
CREATE (c:Community {key: row[0], id: row[1], build: $build, gen: $gen, as_of: s.as_of, method: s.method,
                     window: s.window, size: size(row[3])})
WITH nodes, c, row
UNWIND row[3] AS m
WITH nodes[m] AS a, c
CREATE (a)-[:MEMBER_OF]->(c)
"""


def snapshot_filter(alias: str, prop: str, *, start: bool, end: bool, method: bool, window: bool) -> str:
    """Conditions over fixed fragments (never user text): ``alias.gen = $gen``, ``alias.prop`` between
    $start and $end, method and window; joined with AND (no ``WHERE``)."""
    parts = [f"{alias}.gen = $gen"]
    if start:
        parts.append(f"{alias}.{prop} >= $start")
    if end:
        parts.append(f"{alias}.{prop} <= $end")
    if method:
        parts.append(f"{alias}.method = $method")
    if window:
        parts.append(f"{alias}.window = $window")
    return " AND ".join(parts)


def read_snapshots_query(**flags: bool) -> str:
    return f"""
MATCH (s:Snapshot) WHERE {snapshot_filter("s", "as_of", **flags)}
RETURN s.as_of.epochSeconds AS t_s, s.as_of.nanosecond AS t_ns, s.method AS method, s.window AS window,
       s.assets AS assets
ORDER BY t_s, t_ns, method, window
"""


def _part_filter(alias: str, symbols_on: tuple[str, ...], flags: dict[str, bool]) -> str:
    """WHERE clause of a snapshot-part read: the generation ``$gen``, the $start/$end range, method, window."""
    where = "WHERE " + snapshot_filter(alias, "as_of", **flags)
    if symbols_on:
        where += " AND " + " AND ".join(f"{v}.symbol IN $symbols" for v in symbols_on)
    return where


# Edge reads put no label on the end nodes: ArcadeDB then plans ``r.gen = $gen`` as a relationship-index
# lookup of the generation's edges (it uses relationship indexes for ``=``/``IN`` on an unlabelled pattern,
# not for ranges), and filters the range on those. Every CORRELATED_WITH / LEADS / MEMBER_OF starts at an Asset.
def read_edges_query(symbols: bool, **flags: bool) -> str:
    where = _part_filter("r", ("a", "b") if symbols else (), flags)
    return f"""
MATCH (a)-[r:CORRELATED_WITH]->(b) {where}
RETURN r.as_of.epochSeconds AS t_s, r.as_of.nanosecond AS t_ns, r.method AS method, r.window AS window,
       collect([a.symbol, b.symbol, r.rho]) AS rows
"""


def read_leads_query(symbols: bool, **flags: bool) -> str:
    where = _part_filter("r", ("a", "b") if symbols else (), flags)
    return f"""
MATCH (a)-[r:LEADS]->(b) {where}
RETURN r.as_of.epochSeconds AS t_s, r.as_of.nanosecond AS t_ns, r.method AS method, r.window AS window,
       collect([a.symbol, b.symbol, r.lag, r.rho]) AS rows
"""


# Communities are matched first and expanded to their members after: a pattern starting at the members makes
# ArcadeDB scan every node (measured: 0.6-0.9 s per read on a store holding a year of hourly live builds, against
# ~5 ms with the Community.gen index lookup first).
def read_communities_query(symbols: bool, **flags: bool) -> str:
    where = "WHERE " + snapshot_filter("c", "as_of", **flags)
    members = "WHERE a.symbol IN $symbols " if symbols else ""
    return f"""
MATCH (c:Community) {where}
MATCH (a)-[:MEMBER_OF]->(c) {members}
RETURN c.as_of.epochSeconds AS t_s, c.as_of.nanosecond AS t_ns, c.method AS method, c.window AS window,
       collect([a.symbol, c.id]) AS rows
"""


LIST_SNAPSHOTS = """
MATCH (s:Snapshot) WHERE s.gen = $gen {extra}
RETURN s.as_of.epochSeconds AS t_s, s.as_of.nanosecond AS t_ns, s.method AS method, s.window AS window,
       size(s.assets) AS n_assets, s.n_edges AS n_edges, s.n_leads AS n_leads
ORDER BY t_s, t_ns, method, window
"""

# --------------------------------------------------------------------------------------------- regimes
# Scope nodes: the market is (:Market {id: 'market'}); an asset scope is its (:Asset {symbol}). Regime nodes
# belong to one generation (key = gen|scope|name), so records of different builds never share a node.
SCOPE_NODE = {"market": ("Market", "id"), "asset": ("Asset", "symbol")}
ENSURE_MARKET = "MERGE (m:Market {id: $id})"
# rows: [key, scope, name]
CREATE_REGIMES = """
UNWIND $rows AS row
CREATE (:Regime {key: row[0], build: $build, gen: $gen, scope: row[1], name: row[2]})
"""


def read_regime_records_query(*, start: bool, end: bool, scopes: bool) -> str:
    """Records ``[from_s, from_ns, name, prob]`` per scope of the generation ``$gen``."""
    where = "WHERE g.gen = $gen" + (" AND g.scope IN $scopes" if scopes else "")
    parts = []
    if start:
        parts.append("r.`from` >= $start")
    if end:
        parts.append("r.`from` <= $end")
    rwhere = ("WHERE " + " AND ".join(parts)) if parts else ""
    return f"""
MATCH (g:Regime) {where}
MATCH ()-[r:IN_REGIME]->(g) {rwhere}
RETURN g.scope AS scope, collect([r.`from`.epochSeconds, r.`from`.nanosecond, g.name, r.prob]) AS rows
"""


def create_in_regime_query(kind: str) -> str:
    """rows: [regime_key, from, to, prob] for one scope node ($scope)."""
    label, prop = SCOPE_NODE[kind]
    return f"""
MATCH (n:{label} {{{prop}: $scope}})
UNWIND $rows AS row
MATCH (g:Regime {{key: row[0]}})
CREATE (n)-[:IN_REGIME {{`from`: row[1], `to`: row[2], prob: row[3]}}]->(g)
"""


# rows: [from_key, to_key, count, prob, mean_duration_hours]
CREATE_TRANSITIONS = """
UNWIND $rows AS row
MATCH (a:Regime {key: row[0]})
MATCH (b:Regime {key: row[1]})
CREATE (a)-[:TRANSITIONS_TO {count: row[2], prob: row[3], mean_duration: row[4]}]->(b)
"""
READ_TRANSITIONS = """
MATCH (a:Regime)-[t:TRANSITIONS_TO]->(b:Regime) WHERE a.gen = $gen {extra}
RETURN a.scope AS scope, a.name AS from_regime, b.name AS to_regime, t.count AS count, t.prob AS prob,
       t.mean_duration AS mean_duration
ORDER BY scope, from_regime, to_regime
"""

# --------------------------------------------------------------------------------------------- trading mirror
# Run data (no generation): MERGE on the node id, so mirroring again never duplicates. Asset nodes resolved once
# per batch ($syms); a missing asset makes the statement write nothing (count 0, detected by the caller).
# rows: [id, fill_id, client_order_id, symbol_index, side, qty, price, fee_quote, ts, cycle, reason]
UPSERT_TRADES = _NODES_PROLOGUE + """
UNWIND $rows AS row
MERGE (t:Trade {id: row[0]})
SET t.run = $run, t.fill_id = row[1], t.client_order_id = row[2], t.symbol = $syms[row[3]], t.side = row[4],
    t.qty = row[5], t.price = row[6], t.fee_quote = row[7], t.ts = row[8], t.cycle = row[9], t.reason = row[10]
WITH t, nodes[row[3]] AS a
MERGE (t)-[:OF]->(a)
RETURN count(*) AS n
"""
# rows: [id, cycle, as_of, symbol_index, score, weight, model_version]
UPSERT_SIGNALS = _NODES_PROLOGUE + """
UNWIND $rows AS row
MERGE (s:Signal {id: row[0]})
SET s.run = $run, s.cycle = row[1], s.as_of = row[2], s.symbol = $syms[row[3]], s.score = row[4],
    s.weight = row[5], s.model_version = row[6]
WITH s, nodes[row[3]] AS a
MERGE (s)-[:FOR]->(a)
RETURN count(*) AS n
"""
# A trade's DURING links of one build point into that build's current regime generation only.
DELETE_STALE_DURING = """
UNWIND $ids AS id
MATCH (t:Trade {id: id})-[d:DURING]->(g:Regime)
WHERE d.build = $build AND g.gen <> $gen
DELETE d
"""
# rows: [trade_id, regime_key, prob, from]
LINK_DURING = """
UNWIND $rows AS row
MATCH (t:Trade {id: row[0]})
MATCH (g:Regime {key: row[1]})
MERGE (t)-[d:DURING]->(g)
SET d.build = $build, d.prob = row[2], d.`from` = row[3]
RETURN count(*) AS n
"""
DELETE_RUN_TRADES = "MATCH (t:Trade) WHERE t.run = $run WITH t LIMIT $limit DETACH DELETE t RETURN count(*) AS n"
DELETE_RUN_SIGNALS = "MATCH (s:Signal) WHERE s.run = $run WITH s LIMIT $limit DETACH DELETE s RETURN count(*) AS n"
READ_TRADES = """
MATCH (t:Trade) WHERE t.run = $run
OPTIONAL MATCH (t)-[d:DURING]->(g:Regime)
WITH t, collect(CASE WHEN g IS NULL THEN null ELSE [d.build, g.scope, g.name] END) AS regimes
RETURN t.fill_id AS fill_id, t.client_order_id AS client_order_id, t.symbol AS symbol, t.side AS side,
       t.qty AS qty, t.price AS price, t.cycle AS cycle, regimes
ORDER BY fill_id
"""


# --------------------------------------------------------------------------------------------- clear
def delete_rels_query(rel_type: str) -> str:
    return f"MATCH ()-[r:{rel_type}]->() WITH r LIMIT $limit DELETE r RETURN count(*) AS n"


def delete_nodes_query(label: str) -> str:
    return f"MATCH (n:{label}) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n"


def server_kind(agent: str) -> str:
    """``arcadedb`` or ``neo4j`` from the Bolt server agent (ArcadeDB: ``Neo4j/5.26.0 compatible (ArcadeDB x)``)."""
    if "arcadedb" in agent.lower():
        return "arcadedb"
    if agent.lower().startswith("neo4j/"):
        return "neo4j"
    return "unknown"
