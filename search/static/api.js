// GET requests to the HTTP API with the tab's token, and errors a person can read.
import { tokenStore } from "./token.js";

/** The server wants a token and the request had none, or a wrong one (401). */
export class AuthError extends Error {}

/** Any other failure: `message` is the server's own explanation where it gave one. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** GET `path` with `params` (empty values left out); resolves with the JSON body. */
export async function getJSON(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  const token = tokenStore.get();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
  } catch {
    throw new ApiError("The server could not be reached. Is indexer serve still running?", 0);
  }
  if (response.status === 401) throw new AuthError("The server needs a token.");
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: described by its status below
  }
  if (!response.ok) throw new ApiError(describe(body, response), response.status);
  return body;
}

/** The `detail` of an error body: the server's message, or FastAPI's list of issues. */
function describe(body, response) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((issue) => {
        const where = (issue.loc || []).filter((part) => part !== "query" && part !== "body").join(".");
        return where ? `${where}: ${issue.msg}` : issue.msg;
      })
      .join("; ");
  }
  return `The server answered ${response.status} ${response.statusText}.`.replace(/ \.$/, ".");
}
