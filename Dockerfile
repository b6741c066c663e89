# One image for both components: `docker run IMAGE edge` or `docker run IMAGE worker`
# (see docker-compose.yml). Configured by environment variables (docs/configuration.md).
FROM node:22-slim

WORKDIR /app
# Sources first: `npm ci` runs the root `prepare` script, which builds (tsc -b, then the
# browser bundles) and so needs them.
COPY . .
# node-llama-cpp's prebuilt binaries come with the npm packages; nothing is downloaded at
# install or run time (docs/generators.md, "llama"). Dev dependencies are pruned after the build.
RUN npm ci --no-audit --no-fund \
  && npm prune --omit=dev --no-audit --no-fund \
  && npm cache clean --force

# An edge in a container listens on every interface, so it authenticates its clients: give it
# JWT_SECRET (`docker run -e JWT_SECRET=… IMAGE edge`); without one it refuses to start.
# Anonymous access is an explicit choice: AUTH=none with ALLOW_ANONYMOUS=true.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8787 \
    AUTH=jwt
EXPOSE 8787
USER node
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["edge"]
