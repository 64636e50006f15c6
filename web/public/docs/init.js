// Renders the gateway's OpenAPI document; nothing is fetched from elsewhere (no online
// validator badge).
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
});
