-- GET a subject's status; subjects are spread over the ones the acceptance run created.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ASSENT_LOAD_KEY")
request = function()
  return wrk.format("GET", "/api/v1/subjects/load-" .. math.random(1, 20000) .. "/status")
end
