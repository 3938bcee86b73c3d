// Renders the OpenAPI document as plain HTML: operations by tag, parameters, bodies and answers, with every
// $ref resolved into an indented schema outline. No framework and no network beyond this server.
(function () {
  "use strict";
  const url = document.currentScript.dataset.openapi;
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    children.flat().forEach((c) => node.append(c instanceof Node ? c : document.createTextNode(String(c))));
    return node;
  };

  function resolve(spec, schema) {
    if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()] || {};
    return schema || {};
  }

  function typeOf(spec, schema) {
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.anyOf) return schema.anyOf.map((s) => typeOf(spec, s)).join(" | ");
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.type === "array") return typeOf(spec, schema.items || {}) + "[]";
    return (schema.type || "any") + (schema.format ? ` (${schema.format})` : "");
  }

  // An outline of a schema: one line per member, nested objects indented, cycles cut at a depth of 6.
  function outline(spec, schema, depth) {
    const lines = [];
    const object = resolve(spec, schema);
    const required = new Set(object.required || []);
    Object.entries(object.properties || {}).forEach(([name, prop]) => {
      const mark = required.has(name) ? "" : "?";
      lines.push(`${"  ".repeat(depth)}${name}${mark}: ${typeOf(spec, prop)}`);
      const inner = prop.$ref ? prop : prop.items && prop.items.$ref ? prop.items : (prop.anyOf || []).find((s) => s.$ref);
      if (inner && depth < 6) lines.push(...outline(spec, inner, depth + 1));
    });
    return lines;
  }

  function operation(spec, path, method, op) {
    const box = el("section", { class: "op", id: op.operationId });
    box.append(el("h3", {}, el("span", { class: `method ${method.toUpperCase()}` }, method.toUpperCase()), el("code", {}, path)));
    box.append(el("p", {}, op.summary || ""));
    if (op.description) op.description.split("\n\n").forEach((p) => box.append(el("p", {}, p)));
    const scopes = op["x-credo-scopes"];
    box.append(el("p", { class: "scopes" }, scopes ? `API key scope: ${scopes.join(" or ")} (or admin)` : "No API key needed"));
    if (op.parameters && op.parameters.length) {
      const rows = op.parameters.map((p) =>
        el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, typeOf(spec, p.schema || {})),
          el("td", {}, p.required ? "required" : "optional"), el("td", {}, p.description || "")));
      box.append(el("table", {}, el("tr", {}, ["name", "in", "type", "", "description"].map((h) => el("th", {}, h))), rows));
    }
    if (op.requestBody) {
      const schema = op.requestBody.content["application/json"].schema;
      box.append(el("details", { open: "" }, el("summary", {}, `Request body: ${typeOf(spec, schema)}`),
        el("pre", {}, outline(spec, schema, 0).join("\n"))));
    }
    const answers = Object.entries(op.responses).map(([status, r]) => {
      const schema = r.content && r.content["application/json"] && r.content["application/json"].schema;
      return el("tr", {}, el("td", {}, status), el("td", {}, r.description || ""), el("td", {}, schema ? typeOf(spec, schema) : ""));
    });
    box.append(el("details", {}, el("summary", {}, "Answers"), el("table", {}, answers)));
    const ok = Object.entries(op.responses).find(([s]) => s.startsWith("2"));
    const okSchema = ok && ok[1].content && ok[1].content["application/json"].schema;
    if (okSchema) box.append(el("details", {}, el("summary", {}, `${ok[0]} body: ${typeOf(spec, okSchema)}`),
      el("pre", {}, outline(spec, okSchema, 0).join("\n"))));
    return box;
  }

  fetch(url).then((r) => r.json()).then((spec) => {
    const main = document.getElementById("operations");
    const toc = document.getElementById("toc");
    main.replaceChildren(el("p", {}, spec.info.description || ""));
    const byTag = {};
    Object.entries(spec.paths).forEach(([path, methods]) => Object.entries(methods).forEach(([method, op]) => {
      (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([path, method, op]);
    }));
    Object.entries(byTag).forEach(([tag, ops]) => {
      main.append(el("h2", { id: `tag-${tag}` }, tag));
      toc.append(el("a", { href: `#tag-${tag}` }, tag));
      ops.forEach(([path, method, op]) => main.append(operation(spec, path, method, op)));
    });
  }).catch((e) => {
    document.getElementById("operations").replaceChildren(el("p", {}, `Could not load ${url}: ${e}`));
  });
})();
