// The API reference page (/api/docs): Swagger UI over this server's own OpenAPI document.
// A file, not an inline script: the page has the console's CSP (script-src 'self').
window.SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // never send the document to validator.swagger.io: the page works offline and leaks nothing
  validatorUrl: null,
});
