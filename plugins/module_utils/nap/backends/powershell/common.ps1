# configmgr.nap win_nap_firewall: functions shared by read.ps1 and apply.ps1 (the backend puts this text in
# place of their include line). READ ONLY: nothing here changes the host.
# Targets Windows PowerShell 5.1 (WMF 5.1 on Windows Server 2008 R2 SP1 and later).

function Test-PortAdmitted {
    param ([string]$Ports, [int[]]$Wanted)
    if ([string]::IsNullOrEmpty($Ports) -or $Ports -eq '*') { return $true }
    foreach ($item in $Ports.Split(',')) {
        $item = $item.Trim()
        foreach ($port in $Wanted) {
            if ($item -match '^\d+$' -and [int]$item -eq $port) { return $true }
            if ($item -match '^(\d+)-(\d+)$' -and [int]$Matches[1] -le $port -and $port -le [int]$Matches[2]) {
                return $true
            }
        }
    }
    return $false
}

function ConvertTo-RuleRecord {
    param ($Rule)
    # INetFwRule3 properties (SecureFlags, the authorised lists) are $null where the OS lacks them (2008 R2).
    $interfaces = ''
    if ($null -ne $Rule.Interfaces) { $interfaces = [string]::Join(',', @($Rule.Interfaces)) }
    $secure = $null
    if ($null -ne $Rule.SecureFlags) { $secure = [int]$Rule.SecureFlags }
    @{
        Name = [string]$Rule.Name
        Description = [string]$Rule.Description
        Grouping = [string]$Rule.Grouping
        Direction = [int]$Rule.Direction
        Action = [int]$Rule.Action
        Protocol = [int]$Rule.Protocol
        LocalPorts = [string]$Rule.LocalPorts
        RemotePorts = [string]$Rule.RemotePorts
        LocalAddresses = [string]$Rule.LocalAddresses
        RemoteAddresses = [string]$Rule.RemoteAddresses
        Profiles = [int]$Rule.Profiles
        Enabled = [bool]$Rule.Enabled
        InterfaceTypes = [string]$Rule.InterfaceTypes
        Interfaces = $interfaces
        EdgeTraversal = [bool]$Rule.EdgeTraversal
        ApplicationName = [string]$Rule.ApplicationName
        ServiceName = [string]$Rule.ServiceName
        IcmpTypesAndCodes = [string]$Rule.IcmpTypesAndCodes
        SecureFlags = $secure
        RemoteMachineAuthorizedList = [string]$Rule.RemoteMachineAuthorizedList
        RemoteUserAuthorizedList = [string]$Rule.RemoteUserAuthorizedList
        LocalUserAuthorizedList = [string]$Rule.LocalUserAuthorizedList
    }
}

function Get-PolicyRegistry {
    # Group Policy: HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall (MS-GPFAS 2.2.3: one key per profile with
    # EnableFirewall, DefaultInboundAction, DoNotAllowExceptions, AllowLocalPolicyMerge; 2.2.2: FirewallRules).
    $base = 'HKLM:\SOFTWARE\Policies\Microsoft\WindowsFirewall'
    $profiles = @{}
    foreach ($entry in @(@('domain', 'DomainProfile'), @('private', 'PrivateProfile'), @('public', 'PublicProfile'))) {
        $values = @{}
        $key = Join-Path -Path $base -ChildPath $entry[1]
        if (Test-Path -LiteralPath $key) {
            $item = Get-ItemProperty -LiteralPath $key
            foreach ($name in @('EnableFirewall', 'DefaultInboundAction', 'DoNotAllowExceptions', 'AllowLocalPolicyMerge')) {
                if ($null -ne $item.$name) { $values[$name] = [int]$item.$name }
            }
        }
        $profiles[$entry[0]] = $values
    }
    $rules = New-Object -TypeName System.Collections.ArrayList
    $key = Join-Path -Path $base -ChildPath 'FirewallRules'
    if (Test-Path -LiteralPath $key) {
        $item = Get-Item -LiteralPath $key
        foreach ($name in $item.GetValueNames()) { [void]$rules.Add([string]$item.GetValue($name)) }
    }
    @{ profiles = $profiles; rules = $rules.ToArray() }
}

function Get-FirewallState {
    # ONE pass over the rule collection: the owned group (or prefix-named rules), the enabled inbound TCP
    # rules of other groups on a management port, the inbound rules of the predefined groups named (by their
    # Grouping resource string, e.g. '@FirewallAPI.dll,-28502', or by rule Name), the profile state and the
    # Group Policy registry.
    param ($Policy, [string]$Group, [string]$NamePrefix, [int[]]$ManagementPorts, [string[]]$PredefinedGroups = @(),
        [string[]]$PredefinedNames = @())
    $out = @{
        walks = 1
        local_policy_modify_state = [int]$Policy.LocalPolicyModifyState
        current_profile_types = [int]$Policy.CurrentProfileTypes
        profiles = @{}
        group_policy = (Get-PolicyRegistry)
    }
    foreach ($entry in @(@('domain', 1), @('private', 2), @('public', 4))) {
        $out.profiles[$entry[0]] = @{
            enabled = [bool]$Policy.FirewallEnabled($entry[1])
            default_inbound_action = [int]$Policy.DefaultInboundAction($entry[1])
            block_all_inbound = [bool]$Policy.BlockAllInboundTraffic($entry[1])
        }
    }
    $owned = New-Object -TypeName System.Collections.ArrayList
    $management = New-Object -TypeName System.Collections.ArrayList
    $predefined = New-Object -TypeName System.Collections.ArrayList
    $count = 0
    foreach ($rule in $Policy.Rules) {
        $count++
        $name = [string]$rule.Name
        if ([string]$rule.Grouping -eq $Group -or $name.StartsWith($NamePrefix, [StringComparison]::OrdinalIgnoreCase)) {
            [void]$owned.Add((ConvertTo-RuleRecord -Rule $rule))
        }
        else {
            if ($rule.Enabled -and [int]$rule.Direction -eq 1 -and ([int]$rule.Protocol -eq 6 -or [int]$rule.Protocol -eq 256) -and
                (Test-PortAdmitted -Ports ([string]$rule.LocalPorts) -Wanted $ManagementPorts)) {
                [void]$management.Add((ConvertTo-RuleRecord -Rule $rule))
            }
            # -contains compares strings without regard to case
            if ([int]$rule.Direction -eq 1 -and (($PredefinedGroups -contains [string]$rule.Grouping) -or ($PredefinedNames -contains $name))) {
                [void]$predefined.Add((ConvertTo-RuleRecord -Rule $rule))
            }
        }
    }
    $out.rule_count = $count
    $out.rules = $owned.ToArray()
    $out.management_rules = $management.ToArray()
    $out.predefined_rules = $predefined.ToArray()
    $out
}
