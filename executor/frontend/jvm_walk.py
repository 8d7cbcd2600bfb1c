"""The plan walk of :mod:`executor.frontend.spark`, run inside the JVM: O(1) py4j calls a query.

:func:`executor.frontend.spark.annotate` and :func:`~executor.frontend.spark.relation_info`
read what the plan JSON loses by walking the JVM objects through py4j, one socket round trip
per accessor: thousands per TPC-H query. :data:`JAVA_SOURCE` is the same walk in Java,
compiled at run time by Janino (Spark's own codegen compiler, always on the driver's
classpath) once per JVM; :func:`plan_walk` and :func:`relations` then cost one py4j call each
and return what the py4j walk returns (``tests/executor/frontend/test_jvm_walk.py`` checks
the equality on the TPC-H plans and more).

- The walk mirrors the Python one decision for decision: it parses the plan JSON with the
  Jackson that Spark ships and visits the JSON and the JVM tree together with the same rules
  (``is_tree``, ``contains_tree``, ``_tree_fields``, accessor named after the JSON key), so
  the path keys and facts are the same by construction.
- The plan JSON is Spark's own ``TreeNode.toJSON``, called in the JVM next to the walk.
- The answer comes back through a local temporary file (see :func:`_through_file`).

Janino compiles a subset of Java (no lambdas, no generics checking): plain loops and casts.
pyspark is not imported here; the functions take py4j objects.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CLASS_NAME = "wjio.frontend.PlanWalk"

JAVA_SOURCE = r"""
package wjio.frontend;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.util.RawValue;
import java.io.File;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.sql.catalyst.trees.TreeNode;

/** The py4j plan walk of executor/frontend/spark.py (annotate, relation_info), in the JVM. */
public class PlanWalk {
    private final ObjectMapper mapper = new ObjectMapper();

    /** Writes to file `path` {"plan": toJSON, "nodes": annotate(...), "relations":
     *  relation_info(...), "output_ids": [...]} of an optimized LogicalPlan. */
    public void walk(Object plan, String path) throws Exception {
        ObjectNode out = mapper.createObjectNode();
        String planJson = ((TreeNode) plan).toJSON();
        out.putRawValue("plan", new RawValue(planJson));
        walkTree((JsonNode) mapper.readTree(planJson), plan, "$", out.putObject("nodes"));
        relations(plan, out.putArray("relations"));
        ArrayNode ids = out.putArray("output_ids");
        scala.collection.Seq output = seq(call(plan, "output"));
        for (int i = 0; i < output.length(); i++) {
            ids.add(exprId(output.apply(i)));
        }
        mapper.writeValue(new File(path), out);
    }

    /** Writes relation_info(plan) to file `path`. */
    public void relations(Object plan, String path) throws Exception {
        ArrayNode found = mapper.createArrayNode();
        relations(plan, found);
        mapper.writeValue(new File(path), found);
    }

    // -- annotate -------------------------------------------------------------------------

    private void walkTree(JsonNode flat, Object root, String path, ObjectNode notes)
            throws Exception {
        List jnodes = new ArrayList();
        preorder(root, jnodes);
        if (jnodes.size() != flat.size()) {
            throw new IllegalStateException(path + ": JSON has " + flat.size()
                + " nodes, the JVM tree " + jnodes.size());
        }
        for (int i = 0; i < flat.size(); i++) {
            JsonNode node = at(flat, i);
            Object j = jnodes.get(i);
            String cls = field(node, "class").asText();
            if (!j.getClass().getName().equals(cls)) {
                throw new IllegalStateException(path + "[" + i + "]: JSON " + cls + " vs JVM "
                    + j.getClass().getName());
            }
            String here = path + "[" + i + "]";
            boolean hostIsExpr = isExpressionClass(cls);
            if (hostIsExpr && !cls.endsWith(".AttributeReference") && !cls.endsWith(".Literal")) {
                notes.set(here, note(j, node, cls));
            }
            Iterator keys = node.fieldNames();
            while (keys.hasNext()) {
                String key = (String) keys.next();
                JsonNode v = field(node, key);
                if (key.equals("class") || key.equals("num-children") || !containsTree(v)) {
                    continue;
                }
                if (hostIsExpr && !(isTree(v) && isPlanClass(field(at(v, 0), "class").asText()))) {
                    continue;
                }
                walkValue(v, call(j, key), here + "." + key, notes);
            }
        }
    }

    private void walkValue(JsonNode v, Object jv, String path, ObjectNode notes)
            throws Exception {
        if (jv.getClass().getName().equals("scala.Some")) {
            jv = ((scala.Some) jv).get();
        }
        if (isTree(v)) {
            walkTree(v, jv, path, notes);
        } else if (v.isArray()) {
            scala.collection.Seq items = seq(jv);
            for (int k = 0; k < v.size(); k++) {
                if (containsTree(at(v, k))) {
                    walkValue(at(v, k), items.apply(k), path + "[" + k + "]", notes);
                }
            }
        } else if (v.isObject()) {
            Iterator keys = v.fieldNames();
            while (keys.hasNext()) {
                String key = (String) keys.next();
                if (containsTree(field(v, key))) {
                    walkValue(field(v, key), call(jv, key), path + "." + key, notes);
                }
            }
        }
    }

    private ObjectNode note(Object j, JsonNode node, String cls) throws Exception {
        ObjectNode note = mapper.createObjectNode();
        note.put("class", cls);
        try {
            note.putRawValue("dataType", new RawValue((String) call(call(j, "dataType"), "json")));
            note.put("nullable", ((Boolean) call(j, "nullable")).booleanValue());
        } catch (Exception unevaluable) {
            // as the py4j walk: some expressions have no type (it keeps what it got)
        }
        if (node.has("evalContext")) {
            Object ctx = call(j, "evalContext");
            note.put("evalMode", String.valueOf(call(ctx, "evalMode")));
            note.put("allowDecimalPrecisionLoss",
                ((Boolean) call(ctx, "allowDecimalPrecisionLoss")).booleanValue());
        }
        if (node.has("evalMode")) {
            note.put("evalMode", String.valueOf(call(j, "evalMode")));
        }
        if (node.has("escapeChar")) {
            note.put("escapeChar", String.valueOf(call(j, "escapeChar")));
        }
        return note;
    }

    private static void preorder(Object node, List out) throws Exception {
        out.add(node);
        scala.collection.Seq children = seq(call(node, "children"));
        for (int i = 0; i < children.length(); i++) {
            preorder(children.apply(i), out);
        }
    }

    private static boolean isTree(JsonNode v) {
        if (!v.isArray() || v.size() == 0) {
            return false;
        }
        for (int i = 0; i < v.size(); i++) {
            JsonNode x = at(v, i);
            if (!x.isObject() || !x.has("class") || !x.has("num-children")) {
                return false;
            }
        }
        return true;
    }

    private static boolean containsTree(JsonNode v) {
        if (isTree(v)) {
            return true;
        }
        if (v.isArray()) {
            for (int i = 0; i < v.size(); i++) {
                if (containsTree(at(v, i))) {
                    return true;
                }
            }
        } else if (v.isObject()) {
            Iterator keys = v.fieldNames();
            while (keys.hasNext()) {
                String key = (String) keys.next();
                if (!key.equals("class") && containsTree(field(v, key))) {
                    return true;
                }
            }
        }
        return false;
    }

    // Janino resolves JsonNode.get to the erased com.fasterxml.jackson.core.TreeNode.get.
    private static JsonNode at(JsonNode v, int i) {
        return (JsonNode) v.get(i);
    }

    private static JsonNode field(JsonNode v, String key) {
        return (JsonNode) v.get(key);
    }

    private static boolean isPlanClass(String cls) {
        return cls.indexOf(".plans.logical.") >= 0 || cls.endsWith("LogicalRelation");
    }

    private static boolean isExpressionClass(String cls) {
        return cls.indexOf(".expressions.") >= 0;
    }

    // -- relation_info ----------------------------------------------------------------------

    private void relations(Object node, ArrayNode found) throws Exception {
        if (node.getClass().getName().endsWith(".LogicalRelation")) {
            found.add(relation(node));
        }
        scala.collection.Seq children = seq(call(node, "children"));
        for (int i = 0; i < children.length(); i++) {
            relations(children.apply(i), found);
        }
        scala.collection.Seq subqueries = seq(call(node, "subqueries"));
        for (int i = 0; i < subqueries.length(); i++) {
            relations(subqueries.apply(i), found);
        }
    }

    private ObjectNode relation(Object node) throws Exception {
        Object rel = call(node, "relation");
        scala.collection.Seq out = seq(call(node, "output"));
        ObjectNode info = mapper.createObjectNode();
        ArrayNode ids = info.putArray("output_expr_ids");
        ArrayNode names = info.putArray("output_names");
        for (int i = 0; i < out.length(); i++) {
            ids.add(exprId(out.apply(i)));
            names.add((String) call(out.apply(i), "name"));
        }
        String relClass = rel.getClass().getName();
        info.put("relation_class", relClass);
        info.put("catalog_table",
            ((Boolean) call(call(node, "catalogTable"), "isDefined")).booleanValue());
        if (relClass.endsWith("HadoopFsRelation")) {
            info.put("format", (String) call(call(rel, "fileFormat"), "shortName"));
            ArrayNode roots = info.putArray("root_paths");
            scala.collection.Seq paths = seq(call(call(rel, "location"), "rootPaths"));
            for (int i = 0; i < paths.length(); i++) {
                roots.add(paths.apply(i).toString());
            }
            info.putRawValue("data_schema", new RawValue((String) call(call(rel, "dataSchema"),
                "json")));
            info.putRawValue("partition_schema",
                new RawValue((String) call(call(rel, "partitionSchema"), "json")));
            ObjectNode options = info.putObject("options");
            scala.collection.Map opts = (scala.collection.Map) call(rel, "options");
            scala.collection.Seq keys = opts.keys().toSeq();
            for (int i = 0; i < keys.length(); i++) {
                String key = String.valueOf(keys.apply(i));
                if (!key.equals("path")) {
                    options.put(key, String.valueOf(opts.apply(keys.apply(i))));
                }
            }
        }
        return info;
    }

    // -- reflection ---------------------------------------------------------------------------

    private static long exprId(Object attribute) throws Exception {
        return ((Long) call(call(attribute, "exprId"), "id")).longValue();
    }

    private static scala.collection.Seq seq(Object value) {
        return (scala.collection.Seq) value;
    }

    private static final Map METHODS = new ConcurrentHashMap();

    /** target.name(), as py4j calls it: the public no-argument method of that name. */
    private static Object call(Object target, String name) throws Exception {
        Map byName = (Map) METHODS.get(target.getClass());
        if (byName == null) {
            byName = new ConcurrentHashMap();
            METHODS.put(target.getClass(), byName);
        }
        Method m = (Method) byName.get(name);
        if (m == null) {
            m = target.getClass().getMethod(name, new Class[0]);
            if (!m.canAccess(target)) {
                m.setAccessible(true);  // a public method of a non-public class
            }
            byName.put(name, m);
        }
        return m.invoke(target, new Object[0]);
    }
}
"""


@dataclass
class WalkResult:
    """What the py4j walk reads from one optimized plan (``spark.py``'s reference)."""

    plan: list
    nodes: dict[str, dict[str, Any]]
    relations: list[dict[str, Any]]
    output_ids: tuple[int, ...]


_lock = threading.Lock()
_helpers: dict[int, tuple[Any, Any]] = {}
"""id(py4j gateway client) -> (that client, the compiled helper or None if it failed)."""


def compile_helper(client, loader):
    """A new ``PlanWalk`` instance compiled by Janino in the JVM of py4j gateway ``client``
    under class loader ``loader`` (one that sees Spark's classes); raises if Janino is
    missing or compilation fails."""
    from py4j.java_gateway import JavaClass

    compiler = JavaClass("org.codehaus.janino.SimpleCompiler", client)()
    compiler.setParentClassLoader(loader)
    compiler.cook(JAVA_SOURCE)
    cls = compiler.getClassLoader().loadClass(CLASS_NAME)
    return cls.getDeclaredConstructor(None).newInstance(None)


def helper_for(jplan):
    """The compiled helper of the JVM behind ``jplan`` (compiled on first use, then cached),
    or None when it cannot be compiled there (logged once; callers use the py4j walk)."""
    client = jplan._gateway_client
    with _lock:
        cached = _helpers.get(id(client))
        if cached is not None and cached[0] is client:
            return cached[1]
        try:
            helper = compile_helper(client, jplan.getClass().getClassLoader())
        except Exception as err:  # no Janino, or a JVM whose classes differ from the source's
            reason = " ".join(str(err).strip().splitlines()[:2])  # not the Java stack
            log.warning("cannot compile the JVM-side plan walk (%s); reading plans through "
                        "py4j, one round trip per accessor", reason)
            helper = None
        _helpers[id(client)] = (client, helper)
        return helper


def plan_walk(helper, jplan) -> WalkResult:
    """The plan JSON and its facts, read by ``helper`` in one py4j call; raises (a py4j
    error) where the py4j walk would fail too."""
    doc = _through_file(helper.walk, jplan)
    return WalkResult(doc["plan"], doc["nodes"], doc["relations"], tuple(doc["output_ids"]))


def relations(helper, jplan) -> list[dict[str, Any]]:
    """``relation_info(jplan)`` read by ``helper`` in one py4j call."""
    return _through_file(helper.relations, jplan)


def _through_file(method, jplan) -> Any:
    # The JSON comes back through a file, not as py4j's return value: py4j writes a large
    # answer in 8 KiB pieces on a socket with Nagle's algorithm on, and the last piece waits
    # for Python's delayed ACK, ~40 ms an answer of 9-20 KB. pyspark itself passes data
    # through local temporary files the same way (driver and JVM share a host).
    fd, path = tempfile.mkstemp(prefix="wjio-plan-", suffix=".json")
    os.close(fd)
    try:
        method(jplan, path)
        return json.loads(Path(path).read_bytes())
    finally:
        os.unlink(path)
