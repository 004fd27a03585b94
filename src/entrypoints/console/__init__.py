"""The operator console: gridcore's own pages, served by ``gridcore serve``
(and the demo) from the same process as the API.

Server-rendered pages (Jinja2) whose data comes from the API itself: each
page's script reads the very endpoints a dashboard or a script reads, with
the console session's cookie in place of a bearer token
(``entrypoints.api.sessions``), so there is no second path to the data. The
only front-end library is uPlot for the charts, vendored in ``static/vendor``
with its licence: nothing is fetched from the internet, and nothing needs
Node.js to build.
"""
