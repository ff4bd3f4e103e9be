// /docs: Swagger UI over /openapi.json, from files of this server only (no inline script).
// With a token, the schema is fetched with it, and Swagger UI is authorized with it (its
// Authorize button shows it and takes another), so that "Try it out" works.
import { askForToken, serverAuth, tokenStore } from "./token.js";

const form = document.getElementById("token-form");

function isSchema(url) {
  return new URL(url, window.location.origin).pathname === "/openapi.json";
}

async function start() {
  let auth = "none";
  try {
    auth = await serverAuth();
  } catch {
    // the schema request below says what is wrong
  }
  if (auth === "bearer" && !tokenStore.get()) await askForToken(form);
  const token = auth === "bearer" ? tokenStore.get() : null;
  const SwaggerUIBundle = window.SwaggerUIBundle;
  const ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: false, // the token stays in this tab's sessionStorage, nowhere else
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor(request) {
      const current = tokenStore.get();
      if (current && isSchema(request.url)) request.headers.Authorization = `Bearer ${current}`;
      return request;
    },
    responseInterceptor(response) {
      if (response.status === 401 && isSchema(response.url)) {
        tokenStore.forget();
        document.getElementById("swagger-ui").hidden = true;
        askForToken(form, "The server refused that token. Check it and enter it again.").then(() =>
          window.location.reload(),
        );
      }
      return response;
    },
    onComplete() {
      if (token) ui.preauthorizeApiKey("bearer", token);
    },
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
