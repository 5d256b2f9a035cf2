/* cityres: the few jQuery, Bootstrap and bootstrap-table calls of Great Expectations' Data Docs,
   so the pages work offline (GX loads those libraries from CDNs). Not jQuery: only what GX 1.x
   pages call — $(fn), $(selector|element), .ready .on .each .parent .fadeIn/.fadeOut .show/.hide
   .addClass/.removeClass .data .modal, .bootstrapTable({columns, data, ...}), and the data-toggle
   attributes collapse, tab, buttons and data-dismiss="alert". */
(function () {
  "use strict";
  var readyQueue = [], isReady = false;
  function whenReady(fn) { if (isReady) { fn(); } else { readyQueue.push(fn); } }
  document.addEventListener("DOMContentLoaded", function () {
    isReady = true; readyQueue.splice(0).forEach(function (fn) { fn(); });
  });

  function Q(elements) { this.els = elements; this.length = elements.length; }
  function $(arg) {
    if (typeof arg === "function") { whenReady(arg); return new Q([]); }
    if (arg instanceof Q) { return arg; }
    if (typeof arg === "string") {
      try { return new Q(Array.prototype.slice.call(document.querySelectorAll(arg))); }
      catch (e) { return new Q([]); }
    }
    return new Q(arg ? [arg] : []);
  }
  var handlers = new WeakMap();  // element -> {event: [fn]}
  function on(el, name, fn) {
    var map = handlers.get(el) || {}; (map[name] = map[name] || []).push(fn); handlers.set(el, map);
    if (name.indexOf(".") < 0) { el.addEventListener(name, function (e) { fn.call(el, e); }); }
  }
  function trigger(el, name, args) {
    ((handlers.get(el) || {})[name] || []).forEach(function (fn) { fn.apply(el, [{ target: el }].concat(args)); });
  }
  Q.prototype = {
    each: function (fn) { this.els.forEach(function (el, i) { fn.call(el, i, el); }); return this; },
    ready: function (fn) { whenReady(fn); return this; },
    on: function (name, fn) { this.els.forEach(function (el) { on(el, name, fn); }); return this; },
    parent: function () {
      var out = []; this.els.forEach(function (el) { if (el.parentElement && out.indexOf(el.parentElement) < 0) out.push(el.parentElement); });
      return new Q(out);
    },
    show: function () { this.els.forEach(function (el) { el.style.display = ""; }); return this; },
    hide: function () { this.els.forEach(function (el) { el.style.display = "none"; }); return this; },
    fadeIn: function () { return this.show(); },
    fadeOut: function () { return this.hide(); },
    addClass: function (c) { this.els.forEach(function (el) { el.classList.add(c); }); return this; },
    removeClass: function (c) { this.els.forEach(function (el) { el.classList.remove(c); }); return this; },
    toggleClass: function (c) { this.els.forEach(function (el) { el.classList.toggle(c); }); return this; },
    data: function (key) { return this.els.length ? this.els[0].getAttribute("data-" + key) : undefined; },
    modal: function () { return this; },  // GX's walkthrough modal: not shown
    tooltip: function () { return this; }, popover: function () { return this; },
    bootstrapTable: function (options) {
      if (typeof options === "string") {  // 'clearFilterControl', 'resetSearch'
        this.els.forEach(function (el) { if (el._cityres) { el._cityres.search(""); } });
        return this;
      }
      this.els.forEach(function (el) { drawTable(el, options || {}); });
      return this;
    }
  };

  function named(value) { return typeof value === "string" ? window[value] : value; }
  function sortKey(row, column) {
    var v = row[column.sortName || column.field];
    if (typeof v === "string") { var d = document.createElement("div"); d.innerHTML = v; v = d.textContent.trim().toLowerCase(); }
    return v;
  }
  function drawTable(table, options) {
    var columns = options.columns || [], data = (options.data || []).slice();
    var state = { sortName: options.sortName, sortOrder: options.sortOrder || "asc", query: "" };
    table.classList.add("cityres-table");
    var search = null;
    if (String(options.search) === "true") {
      search = document.createElement("input");
      search.type = "search"; search.placeholder = "Search"; search.className = "cityres-search";
      search.addEventListener("input", function () { state.query = search.value.toLowerCase(); draw(); });
      table.parentNode.insertBefore(search, table);
    }
    table._cityres = { search: function (q) { state.query = q; if (search) search.value = q; draw(); } };
    function draw() {
      var column = columns.filter(function (c) { return c.field === state.sortName || c.sortName === state.sortName; })[0];
      var rows = data.filter(function (row) {
        if (!state.query) return true;
        return columns.some(function (c) { return String(sortKey(row, c)).indexOf(state.query) >= 0; });
      });
      if (column) {
        var sign = state.sortOrder === "desc" ? -1 : 1;
        rows.sort(function (a, b) { var x = sortKey(a, column), y = sortKey(b, column); return x < y ? -sign : x > y ? sign : 0; });
      }
      var head = "<thead><tr>" + columns.map(function (c) {
        var cls = String(c.sortable) === "true" ? "sortable" : "";
        if (column && c === column) cls += " " + state.sortOrder;
        return '<th class="' + cls + '" data-field="' + c.field + '">' + (c.title || c.field) + "</th>";
      }).join("") + "</tr></thead>";
      table.innerHTML = head + "<tbody></tbody>";
      var body = table.querySelector("tbody"), attributes = named(options.rowAttributes);
      rows.forEach(function (row, i) {
        var tr = document.createElement("tr");
        var attrs = attributes ? attributes(row, i) : {};
        Object.keys(attrs || {}).forEach(function (k) { tr.setAttribute(k, attrs[k]); });
        if (row._table_row_link_path) { tr.setAttribute("data-href", row._table_row_link_path); tr.classList.add("clickable-row"); tr.style.cursor = "pointer"; }
        tr.innerHTML = columns.map(function (c) { return '<td style="text-align:' + (c.align || "left") + '">' + (row[c.field] == null ? "" : row[c.field]) + "</td>"; }).join("");
        tr.addEventListener("click", function (e) {
          if (e.target.closest("a")) return;
          var listeners = (handlers.get(table) || {})["click-row.bs.table"] || [];
          if (listeners.length) { trigger(table, "click-row.bs.table", [row, new Q([tr])]); }
          else if (row._table_row_link_path) { window.location = row._table_row_link_path; }
        });
        body.appendChild(tr);
      });
      Array.prototype.forEach.call(table.querySelectorAll("th.sortable"), function (th) {
        th.addEventListener("click", function () {
          var c = columns.filter(function (c) { return c.field === th.getAttribute("data-field"); })[0];
          var name = c.sortName || c.field;
          state.sortOrder = state.sortName === name && state.sortOrder === "asc" ? "desc" : "asc";
          state.sortName = name; draw();
        });
      });
    }
    draw();
  }

  // Bootstrap's data attributes
  document.addEventListener("click", function (e) {
    var toggle = e.target.closest("[data-toggle], [data-dismiss]");
    if (!toggle) return;
    var kind = toggle.getAttribute("data-toggle");
    var target = toggle.getAttribute("data-target") || toggle.getAttribute("href");
    if (kind === "collapse" && target) {
      e.preventDefault();
      var panel = document.getElementById(target.replace(/^#/, ""));
      if (panel) { panel.classList.toggle("show"); toggle.setAttribute("aria-expanded", panel.classList.contains("show")); }
    } else if (kind === "tab" && target) {
      e.preventDefault();
      var nav = toggle.closest(".nav");
      if (nav) Array.prototype.forEach.call(nav.querySelectorAll(".nav-link"), function (a) { a.classList.remove("active"); });
      toggle.classList.add("active");
      var pane = document.getElementById(target.replace(/^#/, ""));
      if (pane && pane.parentElement) {
        Array.prototype.forEach.call(pane.parentElement.children, function (p) { p.classList.remove("active", "show"); });
        pane.classList.add("active", "show");
      }
    } else if (kind === "buttons") {
      var label = e.target.closest("label");
      if (label) { Array.prototype.forEach.call(toggle.querySelectorAll("label"), function (l) { l.classList.remove("active"); }); label.classList.add("active"); }
    } else if (toggle.getAttribute("data-dismiss") === "alert") {
      var alert = toggle.closest(".alert"); if (alert) { trigger(alert, "closed.bs.alert", []); alert.remove(); }
    }
  });

  window.$ = window.jQuery = $;
})();
