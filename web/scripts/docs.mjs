// Copies Swagger UI's script and styles beside the /docs page, so the page needs no network.
import { copyFileSync, mkdirSync } from "node:fs";

const from = new URL("../node_modules/swagger-ui-dist/", import.meta.url);
const to = new URL("../dist/docs/", import.meta.url);
mkdirSync(to, { recursive: true });
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
  copyFileSync(new URL(file, from), new URL(file, to));
}
