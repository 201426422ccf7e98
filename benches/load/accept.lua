-- POST an acceptance for a random subject (some subjects get several: their chains grow).
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ASSENT_LOAD_KEY")
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = '{"document":"service-agreement","version":1,"evidence":{"ip":"198.51.100.7","user_agent":"wrk","locale":"en"}}'
  return wrk.format(nil, "/api/v1/subjects/load-" .. math.random(1, 20000) .. "/acceptances", nil, body)
end
