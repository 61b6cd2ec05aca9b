// Build: `npm ci && npm run build` writes dist/, which the adbreak server serves at `/`.
// `base: "./"` makes every asset URL relative to index.html, so the same dist works at `/` (and under a prefix).
// `npm run dev` proxies the API and Socket.IO to a running server: ADBREAK_SERVER=http://host:port (default below).
import { defineConfig } from "vite";

const server = process.env.ADBREAK_SERVER ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2020",
    sourcemap: false,
  },
  server: {
    proxy: {
      "/api": server,
      "/socket.io": { target: server, ws: true },
    },
  },
});
