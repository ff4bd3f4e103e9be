// The token of a server started with one: asked for once per browser tab, kept in
// sessionStorage (gone when the tab closes; never localStorage, a cookie or a URL) and sent
// as "Authorization: Bearer". Shared by the search page and /docs (same origin, same tab).

const KEY = "babelindex.token";

export const tokenStore = {
  get() {
    try {
      return sessionStorage.getItem(KEY);
    } catch {
      return null; // storage switched off: the token is asked for again
    }
  },
  set(token) {
    try {
      sessionStorage.setItem(KEY, token);
    } catch {
      // kept in memory only, by the caller
    }
  },
  forget() {
    try {
      sessionStorage.removeItem(KEY);
    } catch {
      // nothing stored
    }
  },
};

/** "bearer" when the server needs a token, "none" when not (GET /health says so, open). */
export async function serverAuth() {
  const response = await fetch("/health", { cache: "no-store", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`GET /health answered ${response.status}`);
  const body = await response.json();
  return body.auth === "bearer" ? "bearer" : "none";
}

/**
 * Show `form` (an input named "token", an element with class "error") until a token is
 * entered; resolves with it, stored. `message` explains why it is asked (again).
 */
export function askForToken(form, message = "") {
  const input = form.elements.namedItem("token");
  const error = form.querySelector(".error");
  error.textContent = message;
  input.value = "";
  form.hidden = false;
  input.focus();
  return new Promise((resolve) => {
    function submitted(event) {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) {
        error.textContent = "Enter the token the server was started with.";
        input.focus();
        return;
      }
      form.removeEventListener("submit", submitted);
      input.value = "";
      form.hidden = true;
      tokenStore.set(token);
      resolve(token);
    }
    form.addEventListener("submit", submitted);
  });
}
