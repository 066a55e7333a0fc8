{#- The cost estimate of the AI.GENERATE route: the same query and the same arithmetic as
    python/gemini_batch/cost.py's estimate for batch jobs (AI.GENERATE bills Gemini 2.0+
    at the batch rate), plus BigQuery ML's data-processing charge. The query, the catalog
    and the arithmetic are tied to the Python side by tests/unit/test_rules_agree.py
    (print_rules, print_estimate). docs/costs.md explains the method. -#}

{#- Input tokens per file part by mime type prefix (pricing.file_part_tokens, in its
    order) at the model generation's rates: image, video, audio, PDF, text; Gemini 3 reads
    an image at 1,120 tokens and a PDF page at 560. Any other mime type: 258. -#}
{% macro _gemini_batch_file_part_tokens(gemini_model) -%}
  {%- if gemini_model.split('/')[-1].lower().startswith('gemini-3') -%}
    {{ return([('image/', 1120), ('video/', 15780), ('audio/', 1920),
               ('application/pdf', 5600), ('text/', 258)]) }}
  {%- endif -%}
  {{ return([('image/', 258), ('video/', 15780), ('audio/', 1920),
             ('application/pdf', 2580), ('text/', 258)]) }}
{%- endmacro %}


{#- What the model reads besides the contents, counted as prompt: tool declarations and
    the response schema (pricing.DECLARED_PATHS). -#}
{% macro _gemini_batch_declared_paths() -%}
  {{ return(['tools', 'toolConfig', 'tool_config', 'generationConfig.responseSchema',
             'generationConfig.responseJsonSchema', 'generation_config.response_schema',
             'generation_config.response_json_schema']) }}
{%- endmacro %}


{#- SELECT over `pending` (a SELECT of request_id, request): one row per group of
    requests to `gemini_model` that price alike (warehouse.estimate_groups_sql). -#}
{% macro _gemini_batch_estimate_groups_sql(pending, gemini_model, long_context_tokens=200000) -%}
  {%- set kinds = gemini_batch._gemini_batch_file_part_tokens(gemini_model) -%}
select
  requested_budget, max_output_tokens, candidate_count, long_context,
  count(*) as requests,
  coalesce(sum(prompt_tokens), 0) as input_tokens,
  coalesce(sum(audio_tokens), 0) as audio_tokens
from (
  select *, prompt_tokens > {{ long_context_tokens }} as long_context
  from (
    select
      cast(ceil(text_chars / 4) as int64)
        + cast(ceil(declared_chars / 4) as int64) + {% for prefix, tokens in kinds %}{{ tokens }} * file_parts_{{ loop.index0 }}{{ ' + ' if not loop.last }}{% endfor %}
        + 258 * (file_parts_all{% for kind in kinds %} - file_parts_{{ loop.index0 }}{% endfor %}) as prompt_tokens,
      {% for prefix, tokens in kinds %}{% if prefix == 'audio/' %}{{ tokens }} * file_parts_{{ loop.index0 }}{% endif %}{% endfor %} as audio_tokens,
      requested_budget, max_output_tokens, candidate_count
    from (
      select
        length(array_to_string(regexp_extract_all(body, r'"text":"((?:[^"\\]|\\.)*)"'), '')) as text_chars,
        {%- for prefix, tokens in kinds %}
        array_length(regexp_extract_all(body, r'"mime_?[tT]ype":"{{ prefix }}')) as file_parts_{{ loop.index0 }},
        {%- endfor %}
        array_length(regexp_extract_all(body, r'"mime_?[tT]ype":"')) as file_parts_all,
        {% for path in gemini_batch._gemini_batch_declared_paths() -%}
        if(json_query(request, '$.{{ path }}') is null, 0, length(to_json_string(json_query(request, '$.{{ path }}')))){{ ' + ' if not loop.last }}
        {%- endfor %} as declared_chars,
        requested_budget, max_output_tokens, candidate_count
      from (
        select
          to_json_string(request) as body,
          coalesce(
            lax_int64(json_query(request, '$.generationConfig.thinkingConfig.thinkingBudget')),
            lax_int64(json_query(request, '$.generation_config.thinking_config.thinking_budget'))
          ) as requested_budget,
          coalesce(
            lax_int64(json_query(request, '$.generationConfig.maxOutputTokens')),
            lax_int64(json_query(request, '$.generation_config.max_output_tokens'))
          ) as max_output_tokens,
          coalesce(
            lax_int64(json_query(request, '$.generationConfig.candidateCount')),
            lax_int64(json_query(request, '$.generation_config.candidate_count')), 1
          ) as candidate_count,
          request
        from ({{ pending }})
      )
    )
  )
)
group by requested_budget, max_output_tokens, candidate_count, long_context
{%- endmacro %}


{#- The Gemini models the package knows: name -> price (online USD per million tokens),
    thinking, output limit. The Jinja side of python/gemini_batch/catalog.py's MODELS
    (tests/unit/test_rules_agree.py holds the two together). -#}
{% macro _gemini_batch_catalog() -%}
  {%- set flash = {'default_budget': -1, 'min_budget': 1, 'max_budget': 24576, 'can_disable': true, 'typical_tokens': 800} -%}
  {%- set pro = {'default_budget': -1, 'min_budget': 128, 'max_budget': 32768, 'can_disable': false, 'typical_tokens': 1500} -%}
  {%- set gemini_3 = {'default_budget': -1, 'min_budget': 128, 'max_budget': 32768, 'can_disable': false, 'typical_tokens': 2000} -%}
  {%- set none_ = {'default_budget': 0, 'min_budget': 0, 'max_budget': 0, 'can_disable': true, 'typical_tokens': 0} -%}
  {{ return({
      'gemini-3-pro-preview': {'price': {'input': 2.00, 'output': 12.00, 'long_input': 4.00, 'long_output': 18.00, 'cached_input': 0.20}, 'thinking': gemini_3, 'max_output_tokens': 65536, 'aliases': []},
      'gemini-3-flash-preview': {'price': {'input': 0.50, 'output': 3.00, 'audio_input': 1.00, 'cached_input': 0.05}, 'thinking': {'default_budget': -1, 'min_budget': 0, 'max_budget': 24576, 'can_disable': true, 'typical_tokens': 1000}, 'max_output_tokens': 65536, 'aliases': []},
      'gemini-2.5-pro': {'price': {'input': 1.25, 'output': 10.00, 'long_input': 2.50, 'long_output': 15.00, 'cached_input': 0.125}, 'thinking': pro, 'max_output_tokens': 65536, 'aliases': []},
      'gemini-2.5-flash': {'price': {'input': 0.30, 'output': 2.50, 'audio_input': 1.00, 'cached_input': 0.03}, 'thinking': flash, 'max_output_tokens': 65536, 'aliases': []},
      'gemini-2.5-flash-lite': {'price': {'input': 0.10, 'output': 0.40, 'audio_input': 0.30, 'cached_input': 0.01}, 'thinking': {'default_budget': 0, 'min_budget': 512, 'max_budget': 24576, 'can_disable': true, 'typical_tokens': 0}, 'max_output_tokens': 65536, 'aliases': []},
      'gemini-2.0-flash-001': {'price': {'input': 0.15, 'output': 0.60, 'audio_input': 1.00, 'cached_input': 0.0375}, 'thinking': none_, 'max_output_tokens': 8192, 'aliases': ['gemini-2.0-flash']},
      'gemini-2.0-flash-lite-001': {'price': {'input': 0.075, 'output': 0.30}, 'thinking': none_, 'max_output_tokens': 8192, 'aliases': ['gemini-2.0-flash-lite']},
      'gemini-1.5-pro-002': {'price': {'input': 1.25, 'output': 5.00, 'long_input': 2.50, 'long_output': 10.00}, 'thinking': none_, 'max_output_tokens': 8192, 'aliases': ['gemini-1.5-pro']},
      'gemini-1.5-flash-002': {'price': {'input': 0.075, 'output': 0.30, 'long_input': 0.15, 'long_output': 0.60}, 'thinking': none_, 'max_output_tokens': 8192, 'aliases': ['gemini-1.5-flash']},
  }) }}
{%- endmacro %}


{#- `gemini-2.5-flash` from `publishers/google/models/gemini-2.5-flash@001`. -#}
{% macro _gemini_batch_bare_model(name) -%}
  {{ return(name.split('/')[-1].split('@')[0] | lower) }}
{%- endmacro %}


{#- The longest of `names` the bare model name starts with (cost._longest_prefix). -#}
{% macro _gemini_batch_longest_prefix(gemini_model, names) -%}
  {%- set bare = gemini_batch._gemini_batch_bare_model(gemini_model) -%}
  {%- set found = {'name': none} -%}
  {%- for name in names if bare.startswith(gemini_batch._gemini_batch_bare_model(name)) -%}
    {%- if found.name is none or name | length > found.name | length -%}
      {%- do found.update({'name': name}) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(found.name) }}
{%- endmacro %}


{#- {price, thinking, max_output_tokens} of a model name: the catalog's (by name or alias,
    else the longest name it extends), the price with var gemini_batch_prices applied
    (cost.PriceTable.from_vars); price none when no price is known. -#}
{% macro _gemini_batch_model_facts(gemini_model, prices_var=none) -%}
  {%- set catalog = gemini_batch._gemini_batch_catalog() -%}
  {%- set by_name = {} -%}
  {%- for name, model in catalog.items() -%}
    {%- do by_name.update({name: model}) -%}
    {%- for alias in model.aliases -%}{%- do by_name.update({alias: model}) -%}{%- endfor -%}
  {%- endfor -%}
  {%- set near = gemini_batch._gemini_batch_longest_prefix(gemini_model, by_name.keys() | list) -%}
  {%- set facts = by_name[near] if near else none -%}
  {%- set prices = {} -%}
  {%- for name, model in by_name.items() -%}{%- do prices.update({name: model.price}) -%}{%- endfor -%}
  {%- set overrides = prices_var if prices_var is not none else var('gemini_batch_prices', {}) -%}
  {%- for name, spec in (overrides or {}).items() -%}
    {%- set base = prices.get(gemini_batch._gemini_batch_longest_prefix(name, prices.keys() | list)) -%}
    {%- set merged = dict(base or {}) -%}
    {%- do merged.update(spec) -%}
    {%- do prices.update({name: merged}) -%}
  {%- endfor -%}
  {%- set priced = gemini_batch._gemini_batch_longest_prefix(gemini_model, prices.keys() | list) -%}
  {{ return({
      'price': prices[priced] if priced else none,
      'thinking': facts.thinking if facts else {'default_budget': -1, 'min_budget': 1, 'max_budget': 24576, 'can_disable': true, 'typical_tokens': 1000},
      'max_output_tokens': facts.max_output_tokens if facts else 65536}) }}
{%- endmacro %}


{#- The batch bill (USD) of tokens of one context tier (catalog.Price.batch_usd, no
    cached tokens: an estimate counts none). -#}
{% macro _gemini_batch_batch_usd(price, input_tokens, output_tokens, audio_tokens, long_context) -%}
  {%- set long = long_context and price.get('long_input') is not none -%}
  {%- set rate_in = price.long_input if long else price.input -%}
  {%- set rate_out = (price.long_output or price.output) if long else price.output -%}
  {%- set audio_rate = rate_in if price.get('audio_input') is none or long_context else price.audio_input -%}
  {%- set plain = [0, input_tokens - audio_tokens] | max -%}
  {%- set batch = 1 - price.get('batch_discount', 0.5) -%}
  {{ return((plain * rate_in + audio_tokens * audio_rate + output_tokens * rate_out) * batch / 1000000) }}
{%- endmacro %}


{#- The estimate of requests grouped as _gemini_batch_estimate_groups_sql groups them
    (`rows`: mappings of its columns), as cost.estimate_groups computes it: a dict of
    requests, input_tokens, thinking_tokens, answer_tokens, usd, worst_case_output_tokens,
    worst_case_usd (usd none without a price). `observed`: (answer, thoughts) tokens per
    answered request of the model in the ledger, or none. -#}
{% macro _gemini_batch_estimate(gemini_model, rows, observed=none, prices_var=none) -%}
  {%- set facts = gemini_batch._gemini_batch_model_facts(gemini_model, prices_var) -%}
  {%- set thinking = facts.thinking -%}
  {%- set answer = observed[0] | float if observed else 200 -%}
  {%- set thoughts = observed[1] | float if observed else thinking.typical_tokens -%}
  {%- set total = {'requests': 0, 'input_tokens': 0, 'thinking_tokens': 0, 'answer_tokens': 0,
                   'usd': 0, 'worst_case_output_tokens': 0, 'worst_case_usd': 0} -%}
  {%- set starved = {'requests': 0, 'limits': [], 'expected': 0} -%}
  {%- for row in rows -%}
    {%- set count = row['requests'] | int -%}
    {#- Output is written, and billed, for every candidate (candidateCount). -#}
    {%- set candidates = [1, (row.get('candidate_count') or 1) | int] | max -%}
    {%- set limit = none if row['max_output_tokens'] is none else row['max_output_tokens'] | int -%}
    {%- set requested = none if row['requested_budget'] is none else row['requested_budget'] | int -%}
    {#- catalog.Thinking.budget -#}
    {%- if requested is none -%}{%- set budget = thinking.default_budget -%}
    {%- elif requested == -1 -%}{%- set budget = -1 -%}
    {%- elif requested == 0 -%}{%- set budget = 0 if thinking.can_disable else thinking.min_budget -%}
    {%- else -%}{%- set budget = [thinking.min_budget, [thinking.max_budget, requested] | min] | max -%}
    {%- endif -%}
    {%- set think = 0 if budget == 0 else thoughts if budget == -1 else [budget, thoughts or budget] | min -%}
    {#- Thinking counts against maxOutputTokens: below it plus an answer, the trap. -#}
    {%- if limit is not none and think > 0 and limit < think + answer -%}
      {%- do starved.update({'requests': starved.requests + count, 'expected': [starved.expected, think] | max}) -%}
      {%- if limit not in starved.limits -%}{%- do starved.limits.append(limit) -%}{%- endif -%}
    {%- endif -%}
    {%- set reply = answer -%}
    {%- if limit is not none -%}
      {%- set think = [think, limit] | min -%}
      {%- set reply = [reply, [0, limit - think] | max] | min -%}
    {%- endif -%}
    {%- set worst = count * candidates * ([limit, facts.max_output_tokens] | min if limit is not none else facts.max_output_tokens) -%}
    {%- set input_tokens = row['input_tokens'] | int -%}
    {%- set audio = row['audio_tokens'] | int -%}
    {%- do total.update({
        'requests': total.requests + count,
        'input_tokens': total.input_tokens + input_tokens,
        'thinking_tokens': total.thinking_tokens + count * candidates * think,
        'answer_tokens': total.answer_tokens + count * candidates * reply,
        'worst_case_output_tokens': total.worst_case_output_tokens + worst}) -%}
    {%- if facts.price is not none -%}
      {%- do total.update({
          'usd': total.usd + gemini_batch._gemini_batch_batch_usd(
              facts.price, input_tokens, count * candidates * (think + reply), audio, row['long_context']),
          'worst_case_usd': total.worst_case_usd + gemini_batch._gemini_batch_batch_usd(
              facts.price, input_tokens, worst, audio, row['long_context'])}) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if facts.price is none -%}
    {%- do total.update({'usd': none, 'worst_case_usd': none}) -%}
  {%- endif -%}
  {%- do total.update({'thinking_trap': gemini_batch._gemini_batch_thinking_trap(
        gemini_model, thinking, starved, answer, thoughts)}) -%}
  {{ return(total) }}
{%- endmacro %}


{#- The thinking trap's warning (rules/thinking_room.py's trap_warning, word for word),
    or none: `starved` holds the requests whose maxOutputTokens leave their expected
    thinking no room for an answer, those limits and the most thinking expected. -#}
{% macro _gemini_batch_thinking_trap(gemini_model, thinking, starved, answer, thoughts) -%}
  {%- if not starved.requests -%}{{ return(none) }}{%- endif -%}
  {%- set limits = [] -%}
  {%- for limit in starved.limits | sort -%}
    {%- do limits.append(gemini_batch._gemini_batch_thousands(limit)) -%}
  {%- endfor -%}
  {%- set needed = (starved.expected + answer) | round(0, 'ceil') | int -%}
  {%- set turn_off = "0 turns it off" if thinking.can_disable
        else thinking.min_budget ~ " is the least " ~ gemini_model ~ " takes" -%}
  {{ return(gemini_batch._gemini_batch_thousands(starved.requests)
     ~ " requests leave thinking no room: maxOutputTokens " ~ limits | join(', ')
     ~ " is below what " ~ gemini_model ~ " typically thinks (~"
     ~ gemini_batch._gemini_batch_thousands(thoughts | round | int)
     ~ " tokens with a dynamic or large thinkingBudget) plus an answer (~"
     ~ gemini_batch._gemini_batch_thousands(answer | round | int)
     ~ "): most answers would come back empty (MAX_TOKENS) with their thinking billed. Fix: "
     ~ "raise maxOutputTokens to " ~ gemini_batch._gemini_batch_thousands(needed)
     ~ " or more, or set generationConfig.thinkingConfig.thinkingBudget so thinking + answer fit ("
     ~ turn_off ~ ").") }}
{%- endmacro %}


{#- 1234567 as '1,234,567' (Python's f"{n:,}"). -#}
{% macro _gemini_batch_thousands(number) -%}
  {%- set digits = (number | int | abs) | string -%}
  {%- set groups = [] -%}
  {%- for end in range(digits | length, 0, -3) -%}
    {%- do groups.append(digits[[0, end - 3] | max:end]) -%}
  {%- endfor -%}
  {{ return(('-' if (number | int) < 0 else '') ~ groups | reverse | join(',')) }}
{%- endmacro %}


{#- Prints the estimate of each of `cases` ({gemini_model, rows, observed, prices}: see
    _gemini_batch_estimate) as one JSON list: how tests/unit/test_rules_agree.py compares
    the arithmetic with cost.estimate_groups. No query runs. -#}
{% macro print_estimate(cases) -%}
  {%- set results = [] -%}
  {%- for case in cases -%}
    {%- do results.append(gemini_batch._gemini_batch_estimate(
          case.gemini_model, case.rows, case.get('observed'), case.get('prices') or {})) -%}
  {%- endfor -%}
  {%- do print(tojson(results)) -%}
{%- endmacro %}
