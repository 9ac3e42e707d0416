import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  // Relative asset URLs: dist/ can be served from any path.
  base: "./",
  // The client is linked from ../typescript, which has no React of its own: its
  // `import "react"` must find this app's copy (one React, or hooks break).
  resolve: { dedupe: ["react", "react-dom"] },
  build: { sourcemap: true },
});
