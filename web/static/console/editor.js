/* The YAML editor: line numbers, highlighting, and the engine's problems inline as you type.
 *
 * The page works without this file (a plain textarea that saves). With it, the textarea sits over a highlighted
 * copy of its text; the copy is rebuilt with DOM text nodes only (never innerHTML), so the author's text can
 * never become markup. Problems come from the server's validate endpoint (the same analysis a save runs),
 * fetched 400 ms after the last keystroke, and show at their line and column: a marker in the gutter, a wavy
 * underline at the column and the message at the end of the line.
 */
(function () {
  "use strict";
  var DEBOUNCE_MS = 400;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Tokens of one YAML line: [class or "", text] pairs that concatenate back to the line.
  function tokens(line) {
    var out = [];
    var m = /^(\s*(?:-\s+)?)([^\s:#'"][^:#]*?)(:)(?=\s|$)/.exec(line);
    var rest = line;
    if (m) {
      out.push(["", m[1]]);
      out.push(["k", m[2]]);
      out.push(["p", m[3]]);
      rest = line.slice(m[0].length);
    } else {
      var dash = /^(\s*-)(?=\s|$)/.exec(line);
      if (dash) { out.push(["p", dash[1]]); rest = line.slice(dash[0].length); }
    }
    // A quote opens a string only where a value can start (not the apostrophe in "policy's").
    var re = /((?<![\w])'(?:[^']|'')*'?|(?<![\w])"(?:[^"\\]|\\.)*"?)|(\s#.*$|^#.*$)|(\b(?:true|false|null)\b)|(-?\b\d[\d_]*(?:\.\d+)?(?:e[+-]?\d+)?\b)/g;
    var last = 0, found;
    while ((found = re.exec(rest)) !== null) {
      if (found.index > last) out.push(["", rest.slice(last, found.index)]);
      var cls = found[1] ? "s" : found[2] ? "c" : found[3] ? "b" : "n";
      out.push([cls, found[0]]);
      last = found.index + found[0].length;
      if (found[0].length === 0) re.lastIndex++;
    }
    if (last < rest.length) out.push(["", rest.slice(last)]);
    return out;
  }

  function enhance(box) {
    var area = box.querySelector("textarea");
    if (!area) return;
    var url = box.getAttribute("data-validate-url");
    var ref = box.getAttribute("data-ref") || null;
    var csrf = box.getAttribute("data-csrf");
    var live = document.getElementById("live-problems");
    var gutter = el("div", "gutter");
    gutter.setAttribute("aria-hidden", "true");
    var body = el("div", "body");
    var shadow = el("pre", "hl");
    shadow.setAttribute("aria-hidden", "true");
    box.insertBefore(gutter, area);
    box.insertBefore(body, area);
    body.appendChild(shadow);
    body.appendChild(area);
    box.classList.add("enhanced");
    var problems = [];
    var timer = null;
    var sequence = 0;

    function byLine() {
      var map = {};
      problems.forEach(function (p) {
        if (p.line) (map[p.line] = map[p.line] || []).push(p);
      });
      return map;
    }

    function render() {
      var lines = area.value.split("\n");
      var marks = byLine();
      var gut = document.createDocumentFragment();
      var hl = document.createDocumentFragment();
      lines.forEach(function (line, i) {
        var n = i + 1;
        var here = marks[n];
        var num = el("div", "ln" + (here ? " " + (here.some(function (p) { return p.severity === "error"; }) ? "err" : "warn") : ""), String(n));
        num.setAttribute("data-line", String(n));
        if (here) num.title = here.map(function (p) { return p.message; }).join("\n");
        gut.appendChild(num);
        var row = el("span", "line" + (here ? " marked" : ""));
        row.setAttribute("data-line", String(n));
        var col = here ? Math.max(1, here[0].column || 1) : 0;
        var pos = 1;
        tokens(line).forEach(function (t) {
          var text = t[1];
          if (col && pos <= col && col < pos + text.length) {
            // Underline from the problem's column to the end of its token.
            var cut = col - pos;
            var tail = text.slice(cut);
            var word = /^[^\s,\]\)}]+/.exec(tail);
            var len = word ? word[0].length : Math.max(1, tail.length);
            if (cut > 0) row.appendChild(el("span", t[0], text.slice(0, cut)));
            row.appendChild(el("span", (t[0] ? t[0] + " " : "") + "squiggle " + here[0].severity, tail.slice(0, len)));
            if (len < tail.length) row.appendChild(el("span", t[0], tail.slice(len)));
          } else {
            row.appendChild(el("span", t[0], text));
          }
          pos += text.length;
        });
        if (col && pos <= col) row.appendChild(el("span", "squiggle " + here[0].severity, " "));
        if (here) {
          var lens = el("span", "lens " + here[0].severity, "  \u25c0 " + here.map(function (p) {
            return p.message + (p.hint ? " (" + p.hint + ")" : "");
          }).join("; "));
          lens.setAttribute("data-line", String(n));
          row.appendChild(lens);
        }
        hl.appendChild(row);
        hl.appendChild(document.createTextNode("\n"));
      });
      gutter.replaceChildren(gut);
      shadow.replaceChildren(hl);
      sync();
      if (live) {
        var list = el("ul", "problems");
        if (!problems.length) list.appendChild(el("li", "none", "No problems."));
        problems.forEach(function (p) {
          var where = p.line ? "line " + p.line + ", column " + p.column + ": " : p.path ? p.path + ": " : "";
          var item = el("li", p.severity || "error");
          item.setAttribute("data-line", String(p.line || 0));
          item.appendChild(document.createTextNode(where));
          item.appendChild(el("code", "", p.code));
          item.appendChild(document.createTextNode(" " + p.message + (p.hint ? " (" + p.hint + ")" : "")));
          if (p.line) item.addEventListener("click", function () { jump(p.line, p.column); });
          list.appendChild(item);
        });
        live.replaceChildren(el("h3", "", "Problems as you type"), list);
      }
    }

    function sync() {
      shadow.scrollTop = area.scrollTop;
      shadow.scrollLeft = area.scrollLeft;
      gutter.scrollTop = area.scrollTop;
    }

    function jump(line, column) {
      var lines = area.value.split("\n");
      var offset = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
      offset += Math.max(0, (column || 1) - 1);
      area.focus();
      area.setSelectionRange(offset, offset);
      var lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 19;
      area.scrollTop = Math.max(0, (line - 6) * lineHeight);
      sync();
    }

    function check() {
      if (!url) return;
      var mine = ++sequence;
      box.classList.add("checking");
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json"},
        body: JSON.stringify({text: area.value, ref: ref})
      }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
        if (mine !== sequence || !data) return;  // a newer check is on its way, or the check failed
        problems = data.problems || [];
        box.classList.remove("checking");
        box.setAttribute("data-problems", String(problems.length));
        render();
      }).catch(function () { box.classList.remove("checking"); });
    }

    area.addEventListener("input", function () {
      render();
      clearTimeout(timer);
      timer = setTimeout(check, DEBOUNCE_MS);
    });
    area.addEventListener("scroll", sync);
    // The copies follow the textarea, never the other way round (find-in-page can scroll them on their own).
    gutter.addEventListener("scroll", sync);
    shadow.addEventListener("scroll", sync);
    area.addEventListener("keydown", function (e) {
      if (e.key === "Tab" && !e.shiftKey && !area.readOnly) {
        e.preventDefault();
        var s = area.selectionStart, t = area.selectionEnd;
        area.setRangeText("  ", s, t, "end");
        area.dispatchEvent(new Event("input"));
      }
    });
    render();
    if (url) check();
  }

  document.querySelectorAll(".editor").forEach(enhance);
})();
