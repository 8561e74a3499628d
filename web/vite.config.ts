import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The build lands where internal/web embeds it. File names carry content
// hashes, so the server can cache them for a year.
export default defineConfig({
  plugins: [vue()],
  define: {
    __VUE_OPTIONS_API__: 'false',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  },
  build: {
    outDir: '../internal/web/dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: { '/v1': 'http://127.0.0.1:8080' },
  },
})
