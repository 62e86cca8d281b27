{{/* The image both components run: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "portico.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
