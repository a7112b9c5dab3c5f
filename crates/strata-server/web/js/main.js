// The app shell: sign-in, the navigation (admin pages only for admin keys; the server refuses
// them to other roles anyway), hash routing (#/query?sql=…), and the light/dark theme.
import { h, mount, notice } from "./dom.js";
import { currentSession, isAdmin, loadSession, setSignedOutHandler, signIn, signOut } from "./api.js";

const PAGES = [
  { id: "query", title: "Query", load: () => import("./query.js") },
  { id: "schema", title: "Schema", load: () => import("./schema.js") },
  { id: "errors", title: "Ingest errors", load: () => import("./errors.js") },
  { id: "alerts", title: "Alerts", admin: true, load: () => import("./alerts.js") },
  { id: "keys", title: "Keys & settings", admin: true, load: () => import("./keys.js") },
  { id: "status", title: "Status", load: () => import("./status.js") },
];

const root = document.getElementById("app");
let cleanup = null;

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("strata.theme", theme);
  dispatchEvent(new Event("strata-theme"));
}
applyTheme(localStorage.getItem("strata.theme")
  || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));

function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  return { id: path || "query", params: new URLSearchParams(query) };
}

function signInPage(message) {
  const input = h("input#key", {
    type: "password", autocomplete: "off", placeholder: "sk_…", required: true,
    "aria-label": "Tenant key",
  });
  const status = h("div");
  if (message) mount(status, notice("info", message));
  const form = h("form.signin", {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await signIn(input.value);
        input.value = "";
        render();
      } catch (err) {
        mount(status, notice("error", err.message));
      }
    },
  },
  h("h1", "Strata"),
  h("p", "Sign in with a tenant key (admin, write or read). The key is exchanged for a session cookie and not kept by this page."),
  h("label", { for: "key" }, "Tenant key"), input,
  h("button.primary", { type: "submit" }, "Sign in"), status);
  mount(root, h("main.center", form));
  input.focus();
}

function nav(active) {
  const s = currentSession();
  const links = visiblePages().map((p, i) =>
    h("a", { href: `#/${p.id}`, "aria-current": p.id === active ? "page" : null, "data-page": p.id, title: `Alt+${i + 1}` }, p.title));
  return h("header.top",
    h("a.brand", { href: "#/query" }, "Strata"),
    h("nav", { "aria-label": "Pages" }, links),
    h("div.who",
      h("span.tenant", { title: `session expires ${s.expires}` }, `${s.tenant} · ${s.role}`),
      h("button.ghost#theme", {
        title: "Switch light/dark", "aria-label": "Switch light or dark theme",
        onclick: () => applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"),
      }, "◐"),
      h("button.ghost#signout", { onclick: async () => { await signOut(); render(); } }, "Sign out")));
}

async function render() {
  if (cleanup) { cleanup(); cleanup = null; }
  if (!currentSession()) return signInPage();
  const { id, params } = route();
  const page = PAGES.find((p) => p.id === id);
  const body = h("main#page");
  mount(root, nav(id), body);
  if (!page) return mount(body, notice("error", `No page "${id}".`));
  if (page.admin && !isAdmin()) {
    return mount(body, notice("error", "This page needs an admin key; this session's key has role " + currentSession().role + "."));
  }
  document.title = `${page.title} · Strata`;
  try {
    const mod = await page.load();
    cleanup = (await mod.render(body, params)) || null;
  } catch (err) {
    mount(body, notice("error", err.message));
  }
}

function visiblePages() {
  return PAGES.filter((p) => !p.admin || isAdmin());
}

// Alt+1…Alt+6 open the pages in the order of the navigation.
addEventListener("keydown", (e) => {
  if (!e.altKey || e.ctrlKey || e.metaKey || !currentSession()) return;
  const page = visiblePages()[Number(e.key) - 1];
  if (page) { e.preventDefault(); location.hash = `#/${page.id}`; }
});

setSignedOutHandler(() => signInPage("Your session ended (signed out or expired). Sign in again."));
addEventListener("hashchange", () => {
  // The query page keeps its own state in the URL; only re-render on a page change.
  if (route().id !== root.dataset.page) { root.dataset.page = route().id; render(); }
});
root.dataset.page = route().id;
loadSession().then(render);
