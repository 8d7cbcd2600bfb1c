"""Dump Spark's optimized logical plans of the 22 TPC-H queries as JSON, and inventory them.

    python -m tools.tpch.plans dump [--data DIR] [--out tools/tpch/plans]   # needs pyspark + Java
    python -m tools.tpch.plans inventory [--out tools/tpch/plans]           # pure Python

``dump`` generates SF 0.01 data (unless ``--data`` names a generated set), registers the tables as
temp views, and for each query writes ``<out>/qNN.json``::

    {"query": "q06", "spark_version": "4.3.0", "ansi": true, "sql": "...",
     "tree_string": ["Aggregate [...]", "+- Project [...]", ...],   # optimizedPlan.toString
     "relations": [ {...}, ... ],                                   # see relation_info()
     "plan": [ ... ]}                    # optimizedPlan().toJSON(), parsed, jvmId -> "<jvm>"

``plan`` is Spark's own ``TreeNode.toJSON`` output, unchanged except that every ExprId's ``jvmId``
(a random per-JVM UUID) is replaced by ``"<jvm>"`` so the files are reproducible. The JSON carries
``"relation": null`` for every ``LogicalRelation`` (``HadoopFsRelation`` is not serializable by
``TreeNode.parseToJson``), so ``relations`` adds, per relation, what the JSON lacks: format, root
paths (as ``<table>`` placeholders), schemas, keyed by the relation's output exprIds.

``inventory`` reads the dumped files and writes ``<out>/inventory.json``: every node class that
occurs (plan nodes and expressions, including those inside subquery plans), how often and in which
queries, the JSON fields each class carries, and which fields are always null (information the JSON
loses). ``PLANS.md`` is written from it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from tools.tpch import QUERY_NUMBERS, TABLES, query_name, query_text

PLAN_DIR = Path(__file__).parent / "plans"
JVM_PLACEHOLDER = "<jvm>"
SPARK_PKG = "org.apache.spark.sql."


# ---------------------------------------------------------------------------------------------
# Reading the TreeNode.toJSON format (pure Python; usable without Spark)
# ---------------------------------------------------------------------------------------------

def is_tree(value) -> bool:
    """A flattened TreeNode: a non-empty JSON array of objects each with class + num-children."""
    return (isinstance(value, list) and len(value) > 0
            and all(isinstance(x, dict) and "class" in x and "num-children" in x for x in value))


def unflatten(flat: list[dict]) -> dict:
    """Rebuild the tree of a flattened pre-order array: returns the root as
    ``{"class", "fields": {...}, "children": [...]}`` (fields exclude class/num-children; child
    index fields stay integers into ``children``)."""
    pos = 0

    def build() -> dict:
        nonlocal pos
        if pos >= len(flat):
            raise ValueError(f"truncated TreeNode array: node {pos} missing of {len(flat)}")
        node = flat[pos]
        pos += 1
        fields = {k: v for k, v in node.items() if k not in ("class", "num-children")}
        children = [build() for _ in range(node["num-children"])]
        return {"class": node["class"], "fields": fields, "children": children}

    root = build()
    if pos != len(flat):
        raise ValueError(f"TreeNode array has {len(flat) - pos} trailing node(s) after the root")
    return root


def short(cls: str) -> str:
    """``org.apache.spark.sql.catalyst.expressions.Add`` -> ``catalyst.expressions.Add``."""
    return cls[len(SPARK_PKG):] if cls.startswith(SPARK_PKG) else cls


def kind_of(cls: str) -> str:
    if ".plans.logical." in cls or cls.endswith("LogicalRelation"):
        return "plan"
    if ".expressions." in cls:
        return "expression"
    return "other"


def contains_tree(value) -> bool:
    if is_tree(value):
        return True
    if isinstance(value, list):
        return any(contains_tree(v) for v in value)
    if isinstance(value, dict):
        return any(contains_tree(v) for k, v in value.items() if k != "class")
    return False


def field_trees(node: dict):
    """``(key, value)`` of the fields of one node that hold trees *not* duplicated in the node's
    flattened children: every tree field of a plan node (its expressions), and only the plan
    trees of an expression node (subquery plans). An expression's expression-valued fields that
    are not child indexes (``CaseWhen.branches``/``elseValue``) repeat children already present
    in the flattened array after the node, so they are skipped."""
    host_is_expr = kind_of(node["class"]) == "expression"
    for key, v in node.items():
        if key in ("class", "num-children") or not contains_tree(v):
            continue
        if host_is_expr and not (is_tree(v) and kind_of(v[0]["class"]) == "plan"):
            continue
        yield key, v


def walk_trees(value, found: list, path: str = "$"):
    """Collect every flattened tree inside ``value`` (depth-first): the plan, the expressions of
    its nodes, the plans inside subquery expressions, and so on (duplicates skipped, see
    ``field_trees``). Yields ``(json_path, flat_array)`` pairs into ``found``."""
    if is_tree(value):
        found.append((path, value))
        for i, node in enumerate(value):
            for key, v in field_trees(node):
                walk_trees(v, found, f"{path}[{i}].{key}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            walk_trees(v, found, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, v in value.items():
            walk_trees(v, found, f"{path}.{key}")


def _field_shape(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if is_tree(value):
        return "tree"
    if isinstance(value, list):
        if value and all(is_tree(v) for v in value):
            return "list[tree]"
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "list[int]"
        return "list" if value else "[]"
    if isinstance(value, dict):
        if "product-class" in value:
            return "product:" + value["product-class"].rsplit(".", 1)[-1]
        if "object" in value:
            return "object"
        return "object-json"
    return type(value).__name__


def _example(value, limit: int = 100) -> str:
    if is_tree(value):
        return f"<tree of {len(value)} node(s), root {value[0]['class'].rsplit('.', 1)[-1]}>"
    if isinstance(value, list) and value and all(is_tree(v) for v in value):
        return f"<{len(value)} tree(s)>"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


ENUM_FIELDS = ("joinType", "mode", "direction", "nullOrdering", "isDistinct", "global",
               "dataType", "isStreaming", "timeZoneId")


def _type_str(dt) -> str:
    return dt if isinstance(dt, str) else json.dumps(dt, sort_keys=True)


def _enum_value(key: str, v):
    """A short rendering of enumerated-looking field values, for the value counts."""
    if key not in ENUM_FIELDS:
        return None
    if isinstance(v, dict) and "object" in v:
        return v["object"].rsplit(".", 1)[-1].rstrip("$")
    if isinstance(v, dict) and "product-class" in v:
        return v["product-class"].rsplit(".", 1)[-1]
    if isinstance(v, bool | str):
        return str(v)
    if key == "dataType":
        return _type_str(v)
    return None


def inventory(plans: dict[str, dict]) -> dict:
    """Per class: kind, total count, count per query, field shapes, example values, and fields
    that are null in every occurrence. ``plans`` maps query name -> dumped file content."""
    classes: dict[str, dict] = {}
    per_query_roots = {}
    for qname, doc in plans.items():
        trees: list = []
        walk_trees(doc["plan"], trees)
        per_query_roots[qname] = len(trees)
        for _path, flat in trees:
            for node in flat:
                cls = node["class"]
                entry = classes.setdefault(cls, {
                    "kind": kind_of(cls), "count": 0, "queries": Counter(),
                    "fields": defaultdict(Counter), "examples": {}, "non_null": set(),
                    "num_children": Counter(), "values": defaultdict(Counter),
                })
                entry["count"] += 1
                entry["queries"][qname] += 1
                entry["num_children"][node["num-children"]] += 1
                for key, v in node.items():
                    if key in ("class", "num-children"):
                        continue
                    entry["fields"][key][_field_shape(v)] += 1
                    if v is not None:
                        entry["non_null"].add(key)
                        entry["examples"].setdefault(key, _example(v))
                    value = _enum_value(key, v)
                    if value is not None:
                        entry["values"][key][value] += 1
        for note in doc.get("annotations", {}).values():
            entry = classes.get(note["class"])
            if entry is None:
                continue
            entry["values"]["(resolved dataType)"][_type_str(note.get("dataType"))] += 1
            if "evalMode" in note:
                entry["values"]["(evalMode)"][note["evalMode"]] += 1
    out = {}
    for cls in sorted(classes, key=lambda c: (classes[c]["kind"], -classes[c]["count"], c)):
        e = classes[cls]
        out[cls] = {
            "kind": e["kind"],
            "count": e["count"],
            "queries": dict(sorted(e["queries"].items())),
            "num_children": {str(k): v for k, v in sorted(e["num_children"].items())},
            "fields": {k: dict(v) for k, v in e["fields"].items()},
            "always_null": sorted(k for k in e["fields"] if k not in e["non_null"]),
            "values": {k: dict(v.most_common()) for k, v in sorted(e["values"].items())},
            "examples": e["examples"],
        }
    return out


def load_plans(out: Path = PLAN_DIR) -> dict[str, dict]:
    docs = {}
    for n in QUERY_NUMBERS:
        path = Path(out) / f"{query_name(n)}.json"
        if path.exists():
            docs[query_name(n)] = json.loads(path.read_text())
    return docs


def inventory_markdown(inv: dict) -> str:
    """Markdown tables (class, count, queries, fields) for PLANS.md."""
    lines = []
    for kind, title in (("plan", "Logical plan nodes"), ("expression", "Expressions"),
                        ("other", "Other")):
        rows = [(c, e) for c, e in inv.items() if e["kind"] == kind]
        if not rows:
            continue
        lines += [f"### {title} ({len(rows)} classes)", "",
                  "| class | count | queries | JSON fields (always null in *italics*) |",
                  "|---|---:|---|---|"]
        for cls, e in rows:
            fields = ", ".join(f"*{k}*" if k in e["always_null"] else k for k in e["fields"])
            qs = e["queries"]
            where = "all 22" if len(qs) == len(QUERY_NUMBERS) else \
                " ".join(q.removeprefix("q") for q in sorted(qs))
            lines.append(f"| `{short(cls)}` | {e['count']} | {where} | {fields} |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Dumping (needs pyspark + Java)
# ---------------------------------------------------------------------------------------------

def _seq(jseq) -> list:
    return [jseq.apply(i) for i in range(jseq.size())]


def _placeholder(path: str, tables: dict[str, str]) -> str:
    norm = path.removeprefix("file:").rstrip("/")
    for table, local in tables.items():
        if norm == local.rstrip("/") or norm.endswith("/" + table):
            return f"<{table}>"
    return path


def relation_info(jplan, tables: dict[str, str]) -> list[dict]:
    """Every ``LogicalRelation`` in a JVM plan (pre-order, subquery plans after their host
    node's children), with what ``toJSON`` drops: relation class, format, root paths (as
    ``<table>`` placeholders when they are one of ``tables``), options and schemas."""
    found = []

    def visit(node):
        cls = node.getClass().getName()
        if cls.endswith(".LogicalRelation"):
            rel = node.relation()
            info = {
                "output_expr_ids": [a.exprId().id() for a in _seq(node.output())],
                "output_names": [a.name() for a in _seq(node.output())],
                "relation_class": rel.getClass().getName(),
                "catalog_table": node.catalogTable().isDefined(),
            }
            if rel.getClass().getName().endswith("HadoopFsRelation"):
                info["format"] = rel.fileFormat().shortName()
                info["root_paths"] = [_placeholder(p.toString(), tables)
                                      for p in _seq(rel.location().rootPaths())]
                info["data_schema"] = json.loads(rel.dataSchema().json())
                info["partition_schema"] = json.loads(rel.partitionSchema().json())
                info["options"] = {k: v for k, v in
                                   _jmap(rel.options()).items() if k != "path"}
            found.append(info)
        for child in _seq(node.children()):
            visit(child)
        for sub in _seq(node.subqueries()):
            visit(sub)

    visit(jplan)
    return found


def _jvm_preorder(jnode) -> list:
    out = []

    def pre(j):
        out.append(j)
        for c in _seq(j.children()):
            pre(c)

    pre(jnode)
    return out


def _unwrap_option(jv):
    name = jv.getClass().getName()
    if name == "scala.Some":
        return jv.get()
    return jv


def _expr_note(j, node: dict) -> dict:
    note = {"class": node["class"]}
    try:
        note["dataType"] = json.loads(j.dataType().json())
    except Exception as e:  # unresolved/unevaluable expressions have no data type
        note["dataType"] = f"<error: {type(e).__name__}>"
    try:
        note["nullable"] = bool(j.nullable())
    except Exception:
        pass
    if "evalContext" in node:
        ctx = j.evalContext()
        note["evalMode"] = str(ctx.evalMode())
        for attr in ("allowDecimalPrecisionLoss",):
            try:
                note[attr] = bool(getattr(ctx, attr)())
            except Exception:
                pass
    if "evalMode" in node:
        note["evalMode"] = str(j.evalMode())
    if "escapeChar" in node:
        note["escapeChar"] = str(j.escapeChar())
    if node["class"].endswith(".InSet"):
        note["hset"] = sorted(str(v) for v in _seq(j.hset().toSeq()))
    return note


def annotate(jplan, plan_json: list) -> dict[str, dict]:
    """What ``toJSON`` drops per expression, keyed by the node's JSON path (``$[3].condition[0]``
    = node 0 of the tree in field ``condition`` of plan node 3): resolved ``dataType`` (Spark's
    JSON type notation), ``nullable``, ``evalMode`` (LEGACY/ANSI/TRY) for nodes whose
    ``evalContext``/``evalMode`` field is null in the JSON, ``escapeChar`` of ``Like``, ``hset``
    of ``InSet``. AttributeReference and Literal are skipped (their JSON carries the type)."""
    notes: dict[str, dict] = {}

    def walk_tree(flat: list, jroot, path: str):
        jnodes = _jvm_preorder(jroot)
        if len(jnodes) != len(flat):
            raise ValueError(f"{path}: JSON has {len(flat)} nodes, JVM tree {len(jnodes)}")
        for i, (node, j) in enumerate(zip(flat, jnodes, strict=True)):
            if j.getClass().getName() != node["class"]:
                raise ValueError(f"{path}[{i}]: JSON {node['class']} vs JVM "
                                 f"{j.getClass().getName()}")
            here = f"{path}[{i}]"
            cls = node["class"]
            if kind_of(cls) == "expression" and not cls.endswith(
                    (".AttributeReference", ".Literal")):
                notes[here] = _expr_note(j, node)
            for key, v in field_trees(node):
                walk_value(v, getattr(j, key)(), f"{here}.{key}")

    def walk_value(v, jv, path: str):
        jv = _unwrap_option(jv)
        if is_tree(v):
            walk_tree(v, jv, path)
        elif isinstance(v, list):
            for k, item in enumerate(v):
                if contains_tree(item):
                    walk_value(item, jv.apply(k), f"{path}[{k}]")
        elif isinstance(v, dict):
            for key, item in v.items():
                if contains_tree(item):
                    walk_value(item, getattr(jv, key)(), f"{path}.{key}")

    walk_tree(plan_json, jplan, "$")
    return notes


def _jmap(jmap) -> dict:
    keys = _seq(jmap.keys().toSeq())
    return {str(k): str(jmap.apply(k)) for k in keys}


def _scrub_jvm(value):
    if isinstance(value, dict):
        if value.get("product-class", "").endswith(".ExprId") and "jvmId" in value:
            value = {**value, "jvmId": JVM_PLACEHOLDER}
        return {k: _scrub_jvm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_jvm(v) for v in value]
    return value


def _scrub_paths(text: str, tables: dict[str, str]) -> str:
    for table, local in tables.items():
        text = re.sub(r"(file:)?" + re.escape(local.rstrip("/")), f"<{table}>", text)
    return text


def plan_document(spark, qname: str, sql: str, tables: dict[str, str]) -> dict:
    df = spark.sql(sql)
    qe = df._jdf.queryExecution()
    jplan = qe.optimizedPlan()
    plan = _scrub_jvm(json.loads(_scrub_paths(jplan.toJSON(), tables)))
    return {
        "query": qname,
        "spark_version": spark.version,
        "ansi": spark.conf.get("spark.sql.ansi.enabled") == "true",
        "sql": sql,
        "output_schema": json.loads(df.schema.json()),
        "tree_string": _scrub_paths(jplan.toString(), tables).rstrip("\n").split("\n"),
        "relations": relation_info(jplan, tables),
        "annotations": annotate(jplan, plan),
        "plan": plan,
    }


def dump(out: Path = PLAN_DIR, data: str | None = None, log=print) -> dict[str, dict]:
    """Write ``<out>/qNN.json`` for all 22 queries; returns ``{qname: document}``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from spark_conf import tpch as tpch_data
    from tests.spark_support import local_spark, register_tpch

    if data is None:
        data = str(Path(tempfile.gettempdir()) / "wj-tpch-sf0.01")
        tpch_data.generate(data, 0.01, threads=1, log=log)
    tables = {t: str(Path(data).resolve() / t) for t in TABLES}
    spark = local_spark()
    register_tpch(spark, data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs = {}
    for n in QUERY_NUMBERS:
        qname = query_name(n)
        doc = plan_document(spark, qname, query_text(n), tables)
        (out / f"{qname}.json").write_text(json.dumps(doc, indent=1) + "\n")
        docs[qname] = doc
        log(f"plans: {qname}: {len(doc['plan'])} plan node(s), "
            f"{len(doc['relations'])} relation(s)")
    return docs


def write_inventory(out: Path = PLAN_DIR, log=print) -> dict:
    docs = load_plans(out)
    if not docs:
        raise SystemExit(f"no plan files under {out}; run `python -m tools.tpch.plans dump`")
    inv = inventory(docs)
    (Path(out) / "inventory.json").write_text(json.dumps(inv, indent=1) + "\n")
    log(inventory_markdown(inv))
    return inv


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Spark optimized-plan JSON of the TPC-H queries.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="run Spark and write qNN.json (then the inventory)")
    d.add_argument("--data", help="a generated TPC-H set (default: SF 0.01 in the temp dir)")
    d.add_argument("--out", default=str(PLAN_DIR))
    i = sub.add_parser("inventory", help="write inventory.json from the dumped files")
    i.add_argument("--out", default=str(PLAN_DIR))
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        dump(Path(args.out), args.data)
    write_inventory(Path(args.out))


if __name__ == "__main__":
    main()
