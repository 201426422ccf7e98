-- GET inclusion proofs of random leaves in the tree of ASSENT_LOG_SIZE leaves (and now and then a
-- consistency proof from a random earlier size), as an auditor or the evidence record asks.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ASSENT_LOAD_KEY")
local size = tonumber(os.getenv("ASSENT_LOG_SIZE"))
request = function()
  if math.random(1, 10) == 1 then
    return wrk.format("GET", "/api/v1/log/proof/consistency?from=" .. math.random(1, size) .. "&size=" .. size)
  end
  return wrk.format("GET", "/api/v1/log/proof/inclusion?index=" .. math.random(0, size - 1) .. "&size=" .. size)
end
